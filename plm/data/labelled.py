"""Labelled fine-tuning examples as fixed-length int32 Rows (plm.data.rows)."""
import numpy as np

from plm.data import bible, bible_tasks, packing, pipeline
from plm.data.rows import Rows


def keep_fitting(lengths, limit: int, skip_long: bool, what: str) -> list[int]:
  """Indices of examples of at most `limit` tokens; a longer one stops the run
  unless `skip_long` (then the left-out count is printed, never silent)."""
  long = [i for i, n in enumerate(lengths) if n > limit]
  if long and not skip_long:
    raise ValueError(f'{len(long)} of {len(lengths)} {what} need more than finetune.seq_len='
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
    raise ValueError(f'language {language!r} has no Bible translation; use one of '
                     f'{sorted(pipeline.LANGUAGE_TRANSLATIONS)}')
  return pipeline.LANGUAGE_TRANSLATIONS[language]


def check_translation(name: str, field: str) -> str:
  if name not in bible.TRANSLATIONS:
    raise ValueError(f'{field}={name!r} is not a shipped translation; use one of '
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
    raise ValueError(f'no {language} {split} verse fits finetune.seq_len={fc.seq_len}')
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


def pair_set(tokenizer, split: str, fc, data_dir: str):
  """(Rows of packed pairs, [(source ids, target text)]) for finetune.source -> target.

  Rows are packing.pack_pair's layout `[bos] source [eos] target [eos]`.
  """
  source = check_translation(fc.source, 'finetune.source')
  target = check_translation(fc.target, 'finetune.target')
  if source == target:
    raise ValueError(f'finetune.source and finetune.target are both {source!r}; pick two '
                     'translations')
  pairs = bible_tasks.parallel_verses((source, target), split, data_dir)
  src_ids = tokenizer.encode([p[0] for p in pairs])
  tgt_ids = tokenizer.encode([p[1] for p in pairs])
  kept = keep_fitting([len(s) + len(t) + 3 for s, t in zip(src_ids, tgt_ids)], fc.seq_len,
                      fc.skip_long, f'{source}->{target} {split} pairs')
  if not kept:
    raise ValueError(f'no {split} pair fits finetune.seq_len={fc.seq_len}')
  packed = [packing.pack_pair(src_ids[i], tgt_ids[i], max_len=fc.seq_len,
                                       bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                                       pad_id=tokenizer.pad_id) for i in kept]
  arrays = {k: np.stack([p[k] for p in packed]) for k in packed[0]}
  return (Rows(arrays, info=dict(skipped=len(pairs) - len(kept))),
          [(src_ids[i], pairs[i][1]) for i in kept])
