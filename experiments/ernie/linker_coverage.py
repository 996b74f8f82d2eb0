"""Runs the entity linker over the KJV Bible and WordNet's glosses: coverage and a sample.

  python experiments/ernie/linker_coverage.py --tfds_dir=~/tensorflow_datasets \
      --sample=120 --seed=0 > linker_run.txt

Prints mentions per sentence for each text, the share of mentions whose first subword is
aligned (an 8,000-piece BPE trained on the KJV train split), and a fixed random sample of
mentions (half Bible, half WordNet), one a line, for judging by hand (experiments/ernie/linker.md).
"""
import argparse
import collections
import os
import random
import tempfile
import time

from plm.data import bible, kg, tokenizer as tokenizer_lib
from plm.kg import linker


def texts(tfds_dir):
  """{name: [(sentence id, text)]}: every KJV verse, every WordNet definition and example."""
  verses = [(ref, text) for split in bible.SPLITS
            for ref, text in bible.load_verses('en_kjv', split, tfds_dir)]
  synsets = kg.load_synsets().values()
  return {'KJV verses': verses,
          'WordNet definitions': [(s.key, s.definition) for s in synsets if s.definition],
          'WordNet examples': [(f'{s.key} ex{i}', e) for s in synsets
                               for i, e in enumerate(s.examples)]}


def context(text, m, width=60):
  left = text[max(0, m.start - width):m.start]
  return f'{left}[[{m.surface}]]{text[m.end:m.end + width]}'.replace('\t', ' ')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--tfds_dir', default='~/tensorflow_datasets')
  parser.add_argument('--sample', type=int, default=120)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  tfds_dir = os.path.expanduser(args.tfds_dir)
  start = time.time()
  kg_config = kg.kg_config()
  kg_config.tfds_dir = tfds_dir
  graph = kg.load_graph(kg_config)
  table = linker.wordnet_aliases(graph.entities)
  print(f'alias table: {len(table.aliases):,} aliases of {len(table.entities):,} noun synsets '
        f'of the graph ({time.time() - start:.0f} s with loading)')
  corpora = texts(tfds_dir)
  with tempfile.TemporaryDirectory() as tmp:
    tokenizer = tokenizer_lib.load_or_train(
        os.path.join(tmp, 'spm.model'),
        [text for _, text in bible.load_verses('en_kjv', 'train', tfds_dir)], 8000)
  linked = {}
  print('| text | sentences | words | mentions | mentions/sentence | sentences with one+ '
        '| distinct entities | first subword aligned | seconds |')
  print('|---|---|---|---|---|---|---|---|---|')
  for name, rows in corpora.items():
    t = time.time()
    mentions = [(sid, text, linker.link(table, text)) for sid, text in rows]
    seconds = time.time() - t
    aligned = sum(len(linker.align_to_subwords(text, ms, tokenizer)) for _, text, ms in mentions)
    total = sum(len(ms) for _, _, ms in mentions)
    words = sum(len(linker.WORD.findall(text)) for _, text in rows)
    print(f'| {name} | {len(rows):,} | {words:,} | {total:,} | {total / len(rows):.2f} | '
          f'{sum(bool(ms) for _, _, ms in mentions) / len(rows):.1%} | '
          f'{len({m.entity for _, _, ms in mentions for m in ms}):,} | {aligned / total:.2%} | '
          f'{seconds:.0f} |')
    linked[name] = [(sid, text, m) for sid, text, ms in mentions for m in ms]
  rng = random.Random(args.seed)
  bible_sample = rng.sample(linked['KJV verses'], args.sample // 2)
  wordnet = linked['WordNet definitions'] + linked['WordNet examples']
  sample = bible_sample + rng.sample(wordnet, args.sample - args.sample // 2)
  synsets = kg.load_synsets()
  print('\n# sample: n, sentence id, context with [[mention]], entity, lemmas, definition')
  for n, (sid, text, m) in enumerate(sample, start=1):
    s = synsets[m.entity]
    print(f'{n}\t{sid}\t{context(text, m)}\t{m.entity}\t{",".join(s.lemmas[:4])}\t'
          f'{s.definition[:90]}')
  top = collections.Counter(m.entity for _, _, m in linked['KJV verses']).most_common(15)
  print('\n# most linked KJV entities:', ', '.join(
      f'{synsets[e].lemmas[0]} {c}' for e, c in top))


if __name__ == '__main__':
  main()
