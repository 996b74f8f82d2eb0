"""TFDS builders for corpora a user brings in a local directory (no download).

- `monolingual.PlmText`: one language's plain text, e.g. an extracted
  Wikipedia dump (one sentence or paragraph per line, documents apart).
- `parallel.PlmParallel`: a sentence-aligned language pair, WMT/OPUS style
  (one file per language, line i of one is the translation of line i of the other).
- `xnli.PlmXnli`: an XNLI-style evaluation set, premise/hypothesis/label TSVs
  per language.

Each builder's config names the directory; its config name ends in a
fingerprint of the files (paths, sizes, modification times), so editing the
files builds a new version instead of silently reusing the old one. Build and
read back with `common.data_source`, which uses array_record and needs no
TensorFlow.
"""
