"""The one error type of a mistake the user can fix.

Every deliberate check in plm (a bad config value, a missing file, a vocabulary
that does not match the checkpoint, a non-finite loss) raises a `UserError`
whose message names the fix; `plm.main` prints it as one line. Anything else
(a bug in plm, JAX or numpy) keeps its traceback. `UserError` is a ValueError
and `MissingFileError` a FileNotFoundError, so callers that catch the builtin
types keep working.
"""


class UserError(ValueError):
  """A mistake in the config, the command line or the input files; the message names the fix."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or directory the run needs does not exist."""
