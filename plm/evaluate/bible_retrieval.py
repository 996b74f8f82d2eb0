"""Cross-lingual retrieval of held-out Bible verses (the `retrieve` job and
`train.retrieval_every`).

Embeds the parallel verses of two translations of a split (test: chapters never
trained on) with `embed.layer` and `embed.pooling`, and gives P@1 (and
mean/median rank) in both directions (plm/evaluate/retrieval.py).
"""
import os

import numpy as np

from plm.data import bible, bible_tasks, pipeline
from plm.errors import UserError
from plm.evaluate import embedding as embed
from plm.evaluate import retrieval


def translations(config) -> tuple[str, str]:
  """retrieval.translations, or the Bibles of the first two data.languages."""
  chosen = tuple(config.retrieval.translations)
  if not chosen:
    langs = tuple(config.data.languages)[:2]
    if len(langs) < 2 or any(l not in pipeline.LANGUAGE_TRANSLATIONS for l in langs):
      raise UserError(f'data.languages={tuple(config.data.languages)} does not name two '
                      f'languages with a shipped Bible {sorted(pipeline.LANGUAGE_TRANSLATIONS)}; '
                      f'set retrieval.translations to two of {sorted(bible.TRANSLATIONS)}')
    chosen = tuple(pipeline.LANGUAGE_TRANSLATIONS[l] for l in langs)
  if len(chosen) != 2 or any(t not in bible.TRANSLATIONS for t in chosen):
    raise UserError(f'retrieval.translations={chosen}: name two of {sorted(bible.TRANSLATIONS)}')
  return chosen


def language_ids(config, names) -> list[int]:
  """The language id of each translation (0 for a model without language embeddings)."""
  languages = tuple(config.data.languages)
  if not config.model.num_languages:
    return [0] * len(names)
  missing = [t for t in names if bible.TRANSLATIONS[t] not in languages]
  if missing:
    raise UserError(f'the model has language embeddings for {languages} but retrieval '
                    f'translations {missing} are in another language; set '
                    'retrieval.translations to translations of data.languages')
  return [languages.index(bible.TRANSLATIONS[t]) for t in names]


class Evaluator:
  """(params, split) -> the retrieval table; verse pairs and the jitted embedder built once."""

  def __init__(self, config, tokenizer, model):
    self.config, self.tokenizer = config, tokenizer
    self.names = translations(config)
    self.langs = language_ids(config, self.names)
    self.embedder = embed.make_embedder(model, config, tokenizer.pad_id)
    self.rows = {}

  def split_rows(self, split: str):
    """Token rows of both sides, and how many pairs were dropped (repeated text, too long)."""
    if split not in self.rows:
      pairs = bible_tasks.parallel_verses(self.names, split,
                                          os.path.expanduser(self.config.data.tfds_dir))
      unique = retrieval.unique_pairs(pairs)
      ids = [self.tokenizer.encode([p[side] for p in unique]) for side in (0, 1)]
      bos, eos = self.tokenizer.bos_id, self.tokenizer.eos_id
      max_len = self.config.model.get('max_len') or float('inf')  # LASER: any length
      fits = [i for i in range(len(unique))
              if max(len(ids[0][i]), len(ids[1][i])) + 2 <= max_len]  # with bos and eos
      if not fits:
        raise UserError(f'no {split} verse pair of {self.names} fits model.max_len={max_len}')
      keep, cap = fits, self.config.retrieval.max_pairs
      if cap and len(fits) > cap:  # evenly spaced over the split: every book, not the first
        keep = [fits[i] for i in np.linspace(0, len(fits) - 1, cap).astype(int)]
      rows = [[[bos] + ids[side][i] + [eos] for i in keep] for side in (0, 1)]
      self.rows[split] = rows, dict(repeated=len(pairs) - len(unique),
                                    too_long=len(unique) - len(fits))
    return self.rows[split]

  def __call__(self, params, split: str) -> dict:
    rows, dropped = self.split_rows(split)
    vectors = [embed.embed_rows(self.embedder, params, rows[side], self.tokenizer.pad_id,
                                self.config.embed.batch_size, self.langs[side])
               for side in (0, 1)]
    m = retrieval.retrieval_metrics(*vectors, center=self.config.retrieval.center)
    a, b = self.names
    return {f'{a}->{b}': m['a_to_b'], f'{b}->{a}': m['b_to_a'],
            'setting': dict(split=split, layer=self.config.embed.layer,
                            pooling=self.config.embed.pooling,
                            center=self.config.retrieval.center, dropped=dropped)}


def format_table(table: dict) -> str:
  s = table['setting']
  rows = [f"retrieval ({s['split']} split, layer {s['layer']}, {s['pooling']} pooling"
          f"{', centered' if s['center'] else ''}; dropped "
          f"{s['dropped']['repeated']} pairs with repeated text, {s['dropped']['too_long']} "
          'longer than model.max_len):',
          '| direction | P@1 | mean rank | median rank | pairs |', '|---|---|---|---|---|']
  for direction, m in table.items():
    if direction != 'setting':
      rows.append(f"| {direction} | {m['p_at_1']:.3f} | {m['mean_rank']:.1f} | "
                  f"{m['median_rank']:.1f} | {m['pairs']} |")
  return '\n'.join(rows)


def log(table: dict, step: int, writer=None) -> None:
  """Prints the table; writes P@1 and mean rank to TensorBoard."""
  print(f'step {step} {format_table(table)}', flush=True)
  for direction, m in table.items():
    if writer and direction != 'setting':
      for k in ('p_at_1', 'mean_rank'):
        writer.add_scalar(f"retrieval_{table['setting']['split']}_{direction}/{k}", m[k], step)
