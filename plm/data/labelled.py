"""Labelled fine-tuning examples as fixed-length int32 Rows (plm.data.rows)."""
import numpy as np

from plm.data import bible, bible_tasks, packing, pipeline, tsv
from plm.data.rows import Rows
from plm.errors import UserError


def keep_fitting(lengths, limit: int, skip_long: bool, what: str) -> list[int]:
  """Indices of examples of at most `limit` tokens; a longer one stops the run
  unless `skip_long` (then the left-out count is printed, never silent)."""
  long = [i for i, n in enumerate(lengths) if n > limit]
  if long and not skip_long:
    raise UserError(f'{len(long)} of {len(lengths)} {what} need more than finetune.seq_len='
                    f'{limit} tokens (the longest {max(lengths)}); raise finetune.seq_len (at '
                    'most model.max_len, which the pre-trained run fixes) or set '
                    'finetune.skip_long=True to leave them out (the count is printed and saved)')
  if long:
    print(f'left out {len(long)} of {len(lengths)} {what} longer than finetune.seq_len={limit} '
          'tokens (finetune.skip_long=True)', flush=True)
  drop = set(long)
  return [i for i in range(len(lengths)) if i not in drop]


def translation_of(language: str) -> str:
  if language not in pipeline.LANGUAGE_TRANSLATIONS:
    raise UserError(f'language {language!r} has no Bible translation; use one of '
                    f'{sorted(pipeline.LANGUAGE_TRANSLATIONS)}')
  return pipeline.LANGUAGE_TRANSLATIONS[language]


def check_translation(name: str, field: str) -> str:
  if name not in bible.TRANSLATIONS:
    raise UserError(f'{field}={name!r} is not a shipped translation; use one of '
                    f'{sorted(bible.TRANSLATIONS)}')
  return name


def genre_set(tokenizer, language: str, lang_id: int, split: str, fc, data_dir: str
              ) -> Rows:
  """`[bos] verse [eos] pad...` rows with their genre labels and language id."""
  texts, labels = bible_tasks.genre_examples(translation_of(language), split, data_dir)
  rows = [[tokenizer.bos_id] + ids + [tokenizer.eos_id] for ids in tokenizer.encode(texts)]
  kept = keep_fitting([len(r) for r in rows], fc.seq_len, fc.skip_long,
                      f'{language} {split} verses')
  if not kept:
    raise UserError(f'no {language} {split} verse fits finetune.seq_len={fc.seq_len}')
  n, width = len(kept), fc.seq_len
  tokens = np.full((n, width), tokenizer.pad_id, np.int32)
  valid = np.zeros((n, width), np.int32)
  for out, i in enumerate(kept):
    tokens[out, :len(rows[i])] = rows[i]
    valid[out, :len(rows[i])] = 1
  positions = np.where(valid, np.arange(width), 0)
  return Rows(dict(tokens=tokens, segment_ids=valid, positions=positions,
                   langs=np.full((n, width), lang_id), labels=np.asarray(labels)[kept]),
              info=dict(skipped=len(rows) - n))


def tsv_set(tokenizer, path: str, classes: tuple[str, ...], fields: int, lang_id: int, fc,
            token_types: bool) -> Rows:
  """Rows of a user's TSV file (plm/data/tsv.py): `[bos] text [eos]`, or for pairs
  `[bos] text_a [eos] text_b [eos]` with token types 0 then 1 when `token_types`."""
  texts, labels = tsv.read(path, fields)
  ids = tsv.label_ids(path, labels, classes)
  segments = [tokenizer.encode([t[k] for t in texts]) for k in range(len(texts[0]))]
  rows, types = [], []
  for parts in zip(*segments):
    row, kind = [tokenizer.bos_id], [0]
    for k, part in enumerate(parts):
      row += part + [tokenizer.eos_id]
      kind += [k] * (len(part) + 1)
    rows.append(row)
    types.append(kind)
  kept = keep_fitting([len(r) for r in rows], fc.seq_len, fc.skip_long, f'examples of {path}')
  if not kept:
    raise UserError(f'no example of {path} fits finetune.seq_len={fc.seq_len}')
  n, width = len(kept), fc.seq_len
  arrays = dict(tokens=np.full((n, width), tokenizer.pad_id), segment_ids=np.zeros((n, width)),
                token_types=np.zeros((n, width)))
  for out, i in enumerate(kept):
    arrays['tokens'][out, :len(rows[i])] = rows[i]
    arrays['segment_ids'][out, :len(rows[i])] = 1
    arrays['token_types'][out, :len(rows[i])] = types[i]
  if not token_types:
    del arrays['token_types']
  arrays['positions'] = np.where(arrays['segment_ids'], np.arange(width), 0)
  arrays['langs'] = np.full((n, width), lang_id)
  arrays['labels'] = np.asarray(ids)[kept]
  return Rows(arrays, info=dict(skipped=len(rows) - n))


def target_positions_restart(fc) -> bool:
  """finetune.target_positions: True for 'restart', False for 'continue'."""
  if fc.target_positions not in ('continue', 'restart'):
    raise UserError(f'finetune.target_positions={fc.target_positions!r}; use \'continue\' '
                    "(UNILM's layout) or 'restart' (the target counts from 1 again)")
  return fc.target_positions == 'restart'


def pseudo_target(fc) -> bool:
  """finetune.target_masking: True for 'pseudo', False for 'random'."""
  if fc.target_masking not in ('random', 'pseudo'):
    raise UserError(f'finetune.target_masking={fc.target_masking!r}; use \'random\' '
                    '(UNILM) or \'pseudo\' (s2s-ft)')
  return fc.target_masking == 'pseudo'


def pair_set(tokenizer, split: str, fc, data_dir: str):
  """(Rows of packed pairs, [(source ids, target text)]) for finetune.source -> target.

  Rows are packing.pack_pair's layout `[bos] source [eos] target [eos]` (with
  finetune.target_masking='pseudo', the target and its eos again as [MASK] twins).
  The same translation twice is the copy task (target = source), a sanity check of
  decoding.
  """
  source = check_translation(fc.source, 'finetune.source')
  target = check_translation(fc.target, 'finetune.target')
  if source == target:  # the exact-copy task: a check that fine-tuning and decoding work
    print(f'generate: finetune.source = finetune.target = {source!r}: the copy task '
          '(target = source)', flush=True)
  restart, pseudo = target_positions_restart(fc), pseudo_target(fc)
  pairs = bible_tasks.parallel_verses((source, target), split, data_dir)
  src_ids = tokenizer.encode([p[0] for p in pairs])
  tgt_ids = tokenizer.encode([p[1] for p in pairs])
  plain = [packing.pair_length(len(s), len(t)) for s, t in zip(src_ids, tgt_ids)]
  # Pseudo rows hold the target and its eos twice; the decoded pairs stay the plain-rule
  # ones, so both masking schemes are scored on the same test verses.
  row = [packing.pair_length(len(s), len(t), pseudo) for s, t in zip(src_ids, tgt_ids)]
  twice = ' (with the target twice: finetune.target_masking=pseudo)' if pseudo else ''
  kept = keep_fitting(row, fc.seq_len, fc.skip_long, f'{source}->{target} {split} pairs{twice}')
  if not kept:
    raise UserError(f'no {split} pair fits finetune.seq_len={fc.seq_len}')
  packed = [packing.pack_pair(src_ids[i], tgt_ids[i], max_len=fc.seq_len,
                              bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                              pad_id=tokenizer.pad_id, restart_target_positions=restart,
                              pseudo_target=pseudo) for i in kept]
  arrays = {k: np.stack([p[k] for p in packed]) for k in packed[0]}
  decoded = [i for i, n in enumerate(plain) if n <= fc.seq_len] if pseudo else kept
  return (Rows(arrays, info=dict(skipped=len(pairs) - len(kept))),
          [(src_ids[i], pairs[i][1]) for i in decoded])
