"""The `mine` job: margin-based bitext mining between two monolingual files (LASER).

  python -m plm.main --config=configs/laser.py --config.job=mine --config.mine.src=en.txt \
      --config.mine.tgt=es.txt --config.mine.output=mined.tsv --workdir=runs/laser

Embeds both files with the run's model (any plm model: its sentence vectors,
plm/evaluate/embedding.py), finds each side's mine.k nearest neighbours in the other
(faiss when installed, else blocked jnp matmuls), scores candidates by the margin
of Artetxe & Schwenk (2019) and keeps pairs by mine.retrieval and mine.threshold
(plm/evaluate/mining.py). Writes `score \\t src \\t tgt` lines, best first. Empty
lines are embedded as empty sentences but never mined (they would match each
other); they are counted.
"""
import os

from plm import workdir as workdir_lib
from plm.data import text
from plm.errors import UserError
from plm.evaluate import embedding, mining


def language_id(config, field: str) -> int:
  """The id of mine.<field> in data.languages; a language the model was not trained on is an
  error."""
  languages, lang = tuple(config.data.languages), config.mine[field]
  if lang not in languages:
    raise UserError(f'mine.{field}={lang!r}: the model knows data.languages={list(languages)}; '
                    'name the language of the file as one of them')
  return languages.index(lang) if config.model.get('num_languages', 0) else 0


def mine_files(config, workdir: str) -> list[tuple[float, str, str]]:
  """Runs the job; returns (and writes to mine.output) the mined (score, src, tgt) pairs."""
  mc = config.mine
  if not (mc.src and mc.tgt and mc.output):
    raise UserError('job=mine needs --config.mine.src=<UTF-8 file>, --config.mine.tgt=<UTF-8 '
                    'file> (one sentence a line) and --config.mine.output=<TSV to write>')
  for field, choices in (('margin', mining.MARGINS), ('retrieval', mining.RETRIEVALS),
                         ('backend', mining.BACKENDS)):
    if mc[field] not in choices:
      raise UserError(f'mine.{field}={mc[field]!r}: use one of {tuple(choices)}')
  loaded = workdir_lib.load(workdir, config)
  config, tokenizer = loaded.config, loaded.tokenizer
  langs = [language_id(config, f) for f in ('src_language', 'tgt_language')]
  embedder = embedding.make_embedder(loaded.model, config, tokenizer.pad_id)
  sides, counts = [], []
  for path, lang in zip((mc.src, mc.tgt), langs):
    lines = [l.strip() for l in text.read_lines(path, 'mine: a UTF-8 file, one sentence a line')]
    keep = [i for i, l in enumerate(lines) if l]
    rows = embedding.encode_lines(tokenizer, [lines[i] for i in keep],
                                  config.model.get('max_len'), path)
    vectors = embedding.embed_rows(embedder, loaded.params, rows, tokenizer.pad_id,
                                   config.embed.batch_size, lang)
    sides.append(([lines[i] for i in keep], vectors))
    counts.append((len(lines), len(lines) - len(keep)))
  (src, x), (tgt, y) = sides
  if not len(x) or not len(y):
    raise UserError(f'nothing to mine: {mc.src} has {len(x)} and {mc.tgt} has {len(y)} '
                    'non-empty lines')
  pairs = mining.mine(x, y, k=mc.k, margin=mc.margin, retrieval=mc.retrieval,
                      threshold=mc.threshold, backend=mc.backend)
  out = [(float(score), src[i], tgt[j]) for score, i, j in pairs]
  os.makedirs(os.path.dirname(os.path.abspath(mc.output)), exist_ok=True)
  with open(mc.output, 'w', encoding='utf-8') as f:
    f.write(''.join(f'{score:.5f}\t{s}\t{t}\n' for score, s, t in out))
  print(f'mined {len(out)} pairs (margin {mc.margin}, retrieval {mc.retrieval}, k={mc.k}, '
        f'threshold {mc.threshold}) from {mc.src} ({counts[0][0]} lines, {counts[0][1]} empty '
        f'left out) and {mc.tgt} ({counts[1][0]} lines, {counts[1][1]} empty left out) into '
        f'{mc.output}', flush=True)
  return out
