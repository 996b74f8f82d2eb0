"""Tokenizers behind one interface: plm's sentencepiece BPE (fixed special ids) and
imported WordPiece / BPE vocabularies (`vocab.txt` or `tokenizer.json`, through the
`tokenizers` library) whose special ids are read from the file.

`load(path)` picks by file: `*.model` sentencepiece, `*.json` a tokenizers file,
`*.txt` a BERT WordPiece vocabulary. Every tokenizer has `encode` (ids without
specials), `decode`, `vocab_size`, `pad_id unk_id bos_id eos_id mask_id`,
`fingerprint` and `path`.
"""
import json

from collections.abc import Iterable
import hashlib
import io
import os

import sentencepiece as spm

from plm.errors import MissingFileError, UserError

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
      raise UserError(
         f'{path} is not a sentencepiece model; delete it so that it is '
         'retrained, or fix `data.vocab_path` in the config.') from None
    self._fingerprint = hashlib.sha256(model_proto).hexdigest()[:16]
    self._path = path
    sp = self._sp
    ids = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id(),
           sp.piece_to_id(MASK_PIECE))
    if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID):
      raise UserError(
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


# plm's role -> the tokens that fill it in imported vocabularies (BERT's, then RoBERTa's)
SPECIAL_TOKENS = {'pad': ('[PAD]', '<pad>'), 'unk': ('[UNK]', '<unk>'), 'bos': ('[CLS]', '<s>'),
                  'eos': ('[SEP]', '</s>'), 'mask': ('[MASK]', '<mask>')}


class HFTokenizer:
  """A `tokenizers` tokenizer (WordPiece, BPE, Unigram) with its special ids from the file.

  bos/eos are BERT's [CLS]/[SEP] (RoBERTa's <s>/</s>): plm's rows put bos first
  and eos last, as BERT's pre-training did.
  """

  def __init__(self, tokenizer, path: str, raw: bytes):
    self._tok = tokenizer
    self._tok.no_truncation()  # a file's own truncation would cut text silently
    self._tok.no_padding()
    self._path = path
    self._fingerprint = hashlib.sha256(raw).hexdigest()[:16]
    self._ids = {}
    for role, tokens in SPECIAL_TOKENS.items():
      found = [i for i in map(self._tok.token_to_id, tokens) if i is not None]
      if not found:
        raise UserError(f'the vocabulary {path} has no {role} token (one of {tokens}); plm '
                        'needs pad, unk, bos ([CLS]), eos ([SEP]) and mask ids')
      self._ids[role] = found[0]

  @classmethod
  def load(cls, path: str) -> 'HFTokenizer':
    import tokenizers  # pylint: disable=g-import-not-at-top
    with open(path, 'rb') as f:
      raw = f.read()
    if path.endswith('.json'):
      try:
        return cls(tokenizers.Tokenizer.from_str(raw.decode('utf-8')), path, raw)
      except Exception as e:  # pylint: disable=broad-except  # the library's parse errors
        raise UserError(f'{path} is not a tokenizers file (tokenizer.json): {e}') from None
    # A bare BERT vocab.txt: casing from tokenizer_config.json beside it, if any.
    lower = True  # transformers' BertTokenizer default
    config = os.path.join(os.path.dirname(path), 'tokenizer_config.json')
    if os.path.isfile(config):
      with open(config, encoding='utf-8') as f:
        lower = json.load(f).get('do_lower_case', True)
    tok = tokenizers.BertWordPieceTokenizer(path, lowercase=lower)._tokenizer  # pylint: disable=protected-access
    return cls(tok, path, raw + bytes([lower]))

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  pad_id = property(lambda self: self._ids['pad'])
  unk_id = property(lambda self: self._ids['unk'])
  bos_id = property(lambda self: self._ids['bos'])
  eos_id = property(lambda self: self._ids['eos'])
  mask_id = property(lambda self: self._ids['mask'])
  fingerprint = property(lambda self: self._fingerprint)
  path = property(lambda self: self._path)

  def encode(self, text: str | list[str]) -> list[int] | list[list[int]]:
    """Ids without bos/eos; a list of texts is encoded in one (faster) call."""
    if isinstance(text, str):
      return self._tok.encode(text, add_special_tokens=False).ids
    return [e.ids for e in self._tok.encode_batch(list(text), add_special_tokens=False)]

  def decode(self, ids) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

  def save(self, directory: str) -> str:
    """Writes `{directory}/tokenizer.json` (what transformers' fast tokenizers read)."""
    path = os.path.join(directory, 'tokenizer.json')
    self._tok.save(path)
    return path


def load(path: str) -> 'Tokenizer | HFTokenizer':
  """The tokenizer in file `path`: sentencepiece `.model`, tokenizers `.json`, WordPiece `.txt`."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise MissingFileError(f'no vocabulary at {path}; set data.vocab_path to a sentencepiece '
                           '.model, a tokenizer.json or a WordPiece vocab.txt')
  if path.endswith(('.json', '.txt')):
    return HFTokenizer.load(path)
  return Tokenizer.load(path)


def check_vocab_size(tokenizer, table_rows: int, what: str) -> None:
  """The tokenizer's ids must index the model's embedding table, every one of them."""
  if tokenizer.vocab_size != table_rows:
    raise UserError(f'the tokenizer {tokenizer.path} has {tokenizer.vocab_size} tokens but '
                    f'{what} has an embedding table of {table_rows} rows; use the tokenizer the '
                    'model was trained with (data.vocab_path)')


def load_or_train(path: str, texts: Iterable[str],
                  vocab_size: int) -> Tokenizer:
  """Loads the vocabulary at `path`, or trains BPE on `texts` and saves it there."""
  path = os.path.expanduser(path)
  if os.path.exists(path):
    return load(path)
  if path.endswith(('.json', '.txt')):
    raise MissingFileError(f'no vocabulary at {path}: plm trains only sentencepiece models '
                           '(.model); point data.vocab_path at an existing tokenizer.json or '
                           'vocab.txt')
  sentences = [t for t in texts if t.strip()]
  if not sentences:
    raise UserError(
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
    raise UserError(
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
    raise UserError(
       f'the vocabulary {tokenizer.path} has fingerprint {tokenizer.fingerprint} but the '
       f'config expects {expected} (data.vocab_fingerprint); point data.vocab_path at the '
       'vocabulary the config was made for, or set data.vocab_fingerprint='
       f'{tokenizer.fingerprint} if this one is intended')
