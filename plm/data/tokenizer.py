"""SentencePiece BPE tokenizer with fixed special ids shared by all models."""

from collections.abc import Iterable
import hashlib
import io
import os

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID = 0, 1, 2, 3, 4
MASK_PIECE = '<mask>'
# Sentences sampled for training: the whole Bible in two languages fits, and
# training stays well under 30 s on 2 cores.
_INPUT_SENTENCE_SIZE = 200_000
_SEED = 0


class Tokenizer:
  """A sentencepiece model; ids 0-4 are pad, unk, bos, eos, mask."""

  def __init__(self, model_proto: bytes, path: str | None = None):
    try:
      self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    except RuntimeError:
      raise ValueError(
          f'{path} is not a sentencepiece model; delete it so that it is '
          'retrained, or fix `data.vocab_path` in the config.') from None
    self._fingerprint = hashlib.sha256(model_proto).hexdigest()[:16]
    self._path = path
    sp = self._sp
    ids = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id(),
           sp.piece_to_id(MASK_PIECE))
    if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID):
      raise ValueError(
          f'Tokenizer model {path} does not use the fixed special ids '
          '(pad=0 unk=1 bos=2 eos=3 mask=4); delete it so that it is retrained,'
          ' or point `data.vocab_path` in the config to another model.')

  @classmethod
  def load(cls, path: str) -> 'Tokenizer':
    with open(path, 'rb') as f:
      return cls(f.read(), path)

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  pad_id = property(lambda self: PAD_ID)
  unk_id = property(lambda self: UNK_ID)
  bos_id = property(lambda self: BOS_ID)
  eos_id = property(lambda self: EOS_ID)
  mask_id = property(lambda self: MASK_ID)

  @property
  def fingerprint(self) -> str:
    """First 16 hex chars of sha256(model proto): logged to compare runs."""
    return self._fingerprint

  @property
  def path(self) -> str | None:
    return self._path

  def encode(self, text: str | list[str]) -> list[int] | list[list[int]]:
    """Ids without bos/eos; a list of texts is encoded in one (faster) call."""
    return self._sp.encode(text)

  def decode(self, ids) -> str:
    return self._sp.decode([int(i) for i in ids])


def load_or_train(path: str, texts: Iterable[str],
                  vocab_size: int) -> Tokenizer:
  """Loads the model at `path`, or trains BPE on `texts` and saves it there."""
  path = os.path.expanduser(path)
  if os.path.exists(path):
    return Tokenizer.load(path)
  sentences = [t for t in texts if t.strip()]
  if not sentences:
    raise ValueError(
        f'No text to train the tokenizer {path} on: the corpus is empty. Check '
        'the config (`data.corpus`, `data.languages`, `data.text_dir`) and '
        'that the train split has text.')
  model = io.BytesIO()
  spm.set_random_generator_seed(_SEED)  # Sentence sampling is deterministic.
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type='bpe',
        vocab_size=vocab_size,
        character_coverage=1.0,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        user_defined_symbols=[MASK_PIECE],
        input_sentence_size=_INPUT_SENTENCE_SIZE,
        shuffle_input_sentence=True,
        num_threads=2,
        minloglevel=2,
    )
  except RuntimeError as e:
    raise ValueError(
        f'Training the tokenizer {path} with vocab_size={vocab_size} failed: '
        f'{e}. Lower `data.vocab_size` in the config or train on more text.'
    ) from None
  tokenizer = Tokenizer(model.getvalue(), path)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(model.getvalue())
  os.replace(tmp, path)  # Atomic: a concurrent reader never sees half a file.
  return tokenizer


def check_fingerprint(tokenizer: Tokenizer, expected: str) -> None:
  """Refuses a vocabulary other than the one the config records (`data.vocab_fingerprint`)."""
  if expected and tokenizer.fingerprint != expected:
    raise ValueError(
        f'the vocabulary {tokenizer.path} has fingerprint {tokenizer.fingerprint} but the '
        f'config expects {expected} (data.vocab_fingerprint); point data.vocab_path at the '
        'vocabulary the config was made for, or set data.vocab_fingerprint='
        f'{tokenizer.fingerprint} if this one is intended')
