r"""Prepared corpora: tokenized and packed once into array_record shards, streamed by grain.

  python -m plm.main --config=configs/xlm.py --config.job=prepare \
      --config.data.prepared_dir=data/xlm --workdir=runs/xlm
  python -m plm.main --config=configs/xlm.py --config.data.prepared_dir=data/xlm \
      --workdir=runs/xlm

`prepare` reads the corpus with the readers the in-memory path uses (data.corpus =
bible | textdir | tfds_text; textdir is read one document at a time) and packs it with
plm/data/packing.py, so a prepared row is the row the in-memory path would have made.
Packing happens here, once, rather than per run: the rows, their token counts (the
streams' sampling shares) and the unigram counts are then fixed numbers in
prepared.json, and a training run only opens files. data.prepared_dir holds:

  prepared.json   format, vocabulary fingerprint, corpus, languages, packing settings
                  (seq_len, bos/eos ids), and per split and language: documents, rows,
                  non-pad tokens, shard files and their rows; a fingerprint of all rows
  unigram.npz     train-split token counts per language (the unigram baseline)
  <lang>.<split>-<i>.array_record   one record per row (32 to a chunk): int32 [3, seq_len] =
                  tokens, segment_ids, positions

Training (data.prepared_dir set) builds one grain pipeline per run: each language's
rows are split between processes (row i goes to process i % process_count),
shuffled per epoch by seed, repeated, mixed with the TLM streams by the weights of
plm/data/mixing.py (q ∝ p^language_alpha, data.tlm_share), batched and prefetched by
threads. Its iterator state goes into every checkpoint (plm/checkpoint.py), so a run
killed and resumed continues with the next unseen batch.
"""
from collections.abc import Iterable, Iterator
import functools
import hashlib
import json
import os

from absl import logging
from array_record.python import array_record_module
import grain
import ml_collections
import numpy as np

from plm.data import dataset
from plm.data import mixing
from plm.data import packing
from plm.data import parallel
from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.errors import MissingFileError, UserError

FORMAT = 2
META = 'prepared.json'
UNIGRAM = 'unigram.npz'
ROWS_PER_SHARD = 65536
# Rows are stored in groups of 32 per array_record chunk. grain asks for group_size:1, but
# here 32 read random rows 14x faster (10,000 vs 700 rows/s, one thread) from files 2.7x
# smaller, with a 32x smaller chunk index in memory (experiments/benchmarks/README.md).
WRITER_OPTIONS = 'group_size:32'
DOCS_PER_ENCODE = 1024  # documents tokenized per sentencepiece call
READ_THREADS = 2  # grain threads reading batches ahead of the step
PREFETCH_BATCHES = 8


class _GroupedOnPurpose(logging.logging.Filter):
  """Drops array_record's 'Grain requires group size 1' error for our grouped files."""

  def filter(self, record) -> bool:
    return 'Grain requires group size' not in str(record.msg)


logging.get_absl_logger().addFilter(_GroupedOnPurpose())


def _documents(data_config, split: str, lang: str) -> Iterable[list[str]]:
  if data_config.corpus == 'textdir':  # the one reader that can be huge: streamed
    return pipeline.iter_text_documents(
        os.path.join(os.path.expanduser(data_config.text_dir), f'{lang}.{split}.txt'))
  return pipeline.load_texts(data_config, split, languages=(lang,))[lang]


def _encoded(tokenizer, docs: Iterable[list[str]], counter: dict) -> Iterator[np.ndarray]:
  chunk = []
  for doc in docs:
    chunk.append(doc)
    if len(chunk) == DOCS_PER_ENCODE:
      counter['documents'] += len(chunk)
      yield from pipeline.encode_documents(tokenizer, chunk)
      chunk = []
  counter['documents'] += len(chunk)
  yield from pipeline.encode_documents(tokenizer, chunk)


def prepare(data_config: ml_collections.ConfigDict, tokenizer, out_dir: str) -> dict:
  """Tokenizes and packs every split of every language into `out_dir`; returns the meta."""
  out_dir = os.path.abspath(os.path.expanduser(out_dir))
  if os.path.exists(os.path.join(out_dir, META)):
    raise UserError(f'{out_dir} already holds a prepared corpus ({META}); choose a new '
                    'data.prepared_dir, or delete that directory to prepare it again')
  if data_config.rows != 'packed':
    raise UserError(f'data.rows={data_config.rows!r}: prepared corpora hold packed rows; '
                    "set data.rows='packed'")
  if data_config.corpus not in pipeline.CORPORA:
    raise UserError(f'Unknown corpus {data_config.corpus!r}; set `data.corpus` in the '
                    f'config to one of {pipeline.CORPORA}.')
  os.makedirs(out_dir, exist_ok=True)
  seq_len = int(data_config.seq_len)
  splits, unigram, digest = {}, {}, hashlib.sha256()
  for split in pipeline.SPLITS:
    splits[split] = {}
    for lang in data_config.languages:
      counter = {'documents': 0}
      rows = packing.iter_packed_rows(
          _encoded(tokenizer, _documents(data_config, split, lang), counter), seq_len,
          tokenizer.bos_id, tokenizer.eos_id)
      info = _write_shards(rows, out_dir, f'{lang}.{split}', tokenizer.vocab_size, digest)
      if not info['rows']:
        raise UserError(f'The {data_config.corpus} corpus has no {split} text for {lang!r} '
                        '(no row to prepare); add text for it, or drop the language from '
                        '`data.languages` in the config.')
      counts = info.pop('unigram')
      if split == 'train':
        unigram[lang] = counts
      splits[split][lang] = dict(documents=counter['documents'], **info)
      print(f'prepare: {lang} {split}: {counter["documents"]} documents, {info["rows"]} rows, '
            f'{info["tokens"]} tokens, {len(info["shards"])} shards', flush=True)
  np.savez(os.path.join(out_dir, UNIGRAM), **unigram)
  meta = dict(format=FORMAT, vocab=tokenizer.fingerprint, vocab_size=tokenizer.vocab_size,
              corpus=data_config.corpus, languages=list(data_config.languages),
              packing=dict(seq_len=seq_len, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                           layout='plm/data/packing.py: documents flow across rows, one '
                                  'segment per chunk, each chunk starts with bos'),
              fingerprint=digest.hexdigest()[:16], splits=splits)
  with open(os.path.join(out_dir, META), 'w', encoding='utf-8') as f:  # last: marks it done
    json.dump(meta, f, indent=1)
  return meta


def _write_shards(rows: Iterator[dict], out_dir: str, prefix: str, vocab_size: int,
                  digest) -> dict:
  shards, n, tokens, writer = [], 0, 0, None
  unigram = np.zeros(vocab_size, np.int64)
  for row in rows:
    if n % ROWS_PER_SHARD == 0:
      if writer:
        writer.close()
      shards.append(f'{prefix}-{len(shards):05d}.array_record')
      writer = array_record_module.ArrayRecordWriter(os.path.join(out_dir, shards[-1]),
                                                     WRITER_OPTIONS)
    record = np.stack([row['tokens'], row['segment_ids'], row['positions']]).tobytes()
    writer.write(record)
    digest.update(record)
    real = row['tokens'][row['segment_ids'] > 0]
    unigram += np.bincount(real, minlength=vocab_size)
    tokens += len(real)
    n += 1
  if writer:
    writer.close()
  shard_rows = [min(ROWS_PER_SHARD, n - i * ROWS_PER_SHARD) for i in range(len(shards))]
  return dict(rows=n, tokens=tokens, shards=shards, shard_rows=shard_rows, unigram=unigram)


def read_meta(prepared_dir: str) -> dict:
  path = os.path.join(os.path.expanduser(prepared_dir), META)
  if not os.path.isfile(path):
    raise MissingFileError(
       f'{path} does not exist: data.prepared_dir={prepared_dir!r} is not a prepared corpus '
       '(or its preparation was interrupted). Run the prepare job first: python -m plm.main '
       '--config=<this config> --config.job=prepare --config.data.prepared_dir=<dir> '
       '--workdir=<run dir>')
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def check_meta(meta: dict, data_config, tokenizer, prepared_dir: str) -> None:
  """A prepared corpus serves only the vocabulary, languages and row length it was made with."""
  fix = ('prepare it again with this config into a new directory (--config.job=prepare '
         '--config.data.prepared_dir=<new dir>), or train with the config it was made with')
  if meta.get('format') != FORMAT:
    raise UserError(f'{prepared_dir} has format {meta.get("format")}, this plm reads '
                    f'{FORMAT}; {fix}')
  if meta['vocab'] != tokenizer.fingerprint:
    raise UserError(f'{prepared_dir} was prepared with vocabulary {meta["vocab"]} but this '
                    f"run's vocabulary is {tokenizer.fingerprint} ({tokenizer.path}); set "
                    'data.vocab_path to the vocabulary it was prepared with, or ' + fix)
  if meta['packing']['seq_len'] != data_config.seq_len:
    raise UserError(f'{prepared_dir} holds rows of {meta["packing"]["seq_len"]} tokens but '
                    f'data.seq_len={data_config.seq_len}; set data.seq_len='
                    f'{meta["packing"]["seq_len"]}, or {fix}')
  if missing := [l for l in data_config.languages if l not in meta['languages']]:
    raise UserError(f'{prepared_dir} has no rows for languages {missing} (it holds '
                    f'{meta["languages"]}); fix data.languages, or {fix}')
  if data_config.rows != 'packed':
    raise UserError(f'data.rows={data_config.rows!r}, but a prepared corpus holds packed '
                    "rows; set data.rows='packed'")


class _Records:
  """One language's rows of one split as a random-access source of row dicts."""

  def __init__(self, prepared_dir: str, entry: dict, seq_len: int, lang_id: int):
    # `file[0:n]`: the row counts come from prepared.json, so no file is opened (and no
    # chunk index read) before its first row is: start-up does not grow with the corpus
    paths = [f'{os.path.join(prepared_dir, s)}[0:{n}]'
             for s, n in zip(entry['shards'], entry['shard_rows'])]
    self._source = grain.sources.ArrayRecordDataSource(paths)
    self._seq_len, self._lang_id = seq_len, lang_id

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict:
    row = np.frombuffer(self._source[i], np.int32).reshape(3, self._seq_len)
    segment_ids = row[1].copy()
    return dict(tokens=row[0].copy(), segment_ids=segment_ids, positions=row[2].copy(),
                langs=np.where(segment_ids > 0, self._lang_id, 0).astype(np.int32))


class PreparedDataset(dataset.Dataset):
  """The training rows of a prepared corpus (plus in-memory TLM rows), mixed by grain.

  Offers the loop what Rows / MixedDataset do (batch, fingerprint, token_counts, ...)
  and `iterator`, the checkpointable grain iterator the loop reads from.
  """

  def __init__(self, data_config: ml_collections.ConfigDict, tokenizer):
    self.dir = os.path.abspath(os.path.expanduser(data_config.prepared_dir))
    self.prepared = read_meta(self.dir)
    check_meta(self.prepared, data_config, tokenizer, self.dir)
    self.data_config, self.tokenizer = data_config, tokenizer
    languages = tuple(data_config.languages)
    tlm_share = float(data_config.tlm_share)
    train = self.prepared['splits']['train']
    mono = {l: self.records('train', l) for l in languages} if tlm_share < 1 else {}
    tlm = {}
    if tlm_share > 0:  # parallel data is small: in memory, as today
      for src, tgt in parallel.parse_pairs(data_config):
        tlm[f'{src}-{tgt}'] = parallel.make_tlm_dataset(data_config, tokenizer, 'train',
                                                        src, tgt)
    weights = mixing.stream_weights(
        {l: float(train[l]['tokens']) for l in mono},
        {n: float(np.sum(r.arrays['segment_ids'] > 0)) for n, r in tlm.items()},
        data_config.language_alpha, tlm_share)
    self.names = tuple(n for n in (*mono, *tlm) if weights.get(n, 0) > 0)
    self.weights = np.array([weights[n] for n in self.names])
    self._streams = {**mono, **{n: _RowsSource(r) for n, r in tlm.items()}}
    self._tlm = tlm
    self.info = {n: len(self._streams[n]) for n in self.names}

  def records(self, split: str, lang: str) -> _Records:
    return _Records(self.dir, self.prepared['splits'][split][lang], self.prepared['packing']['seq_len'],
                    tuple(self.data_config.languages).index(lang))

  def __len__(self) -> int:
    return sum(len(self._streams[n]) for n in self.names)

  @property
  def seq_len(self) -> int:
    return self.prepared['packing']['seq_len']

  @functools.cached_property
  def fingerprint(self) -> str:
    h = hashlib.sha256(f'{self.prepared["fingerprint"]}'.encode())
    for name, w in zip(self.names, self.weights):
      extra = self._tlm[name].fingerprint if name in self._tlm else ''
      h.update(f'{name}:{extra}:{w:.12g};'.encode())
    return h.hexdigest()[:16]

  @property
  def summary(self) -> str:
    return ', '.join(f'{n} {len(self._streams[n])} rows p={w:.3f}'
                     for n, w in zip(self.names, self.weights)) + f' (prepared in {self.dir})'

  def token_counts(self, vocab_size: int) -> np.ndarray:
    with np.load(os.path.join(self.dir, UNIGRAM)) as saved:
      counts = sum(saved[n] for n in self.names if n in saved.files)
    counts = counts + sum(self._tlm[n].token_counts(vocab_size) for n in self.names
                          if n in self._tlm)
    if len(counts) != vocab_size:
      raise UserError(f'{self.dir} counts {len(counts)} token ids, the vocabulary has '
                      f'{vocab_size}; prepare the corpus again with this vocabulary')
    return counts

  def dataset(self, batch_size: int, *, seed: int, process_index: int = 0,
              process_count: int = 1) -> grain.MapDataset:
    """Global batch `step` -> this process's rows of it, as a grain MapDataset."""
    n = rows_lib.per_process(batch_size, process_index, process_count)
    streams = []
    for i, name in enumerate(self.names):
      shard = grain.MapDataset.source(self._streams[name])[process_index::process_count]
      if not len(shard):
        raise UserError(f'stream {name} has {len(self._streams[name])} rows, fewer than the '
                        f'{process_count} processes; use more data or fewer processes')
      streams.append(shard.shuffle(seed=_stream_seed(seed, i)).repeat()
                     .map(functools.partial(_with_stream, i)))
    mixed = streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, self.weights)
    return mixed.batch(n, drop_remainder=True)

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    return self.dataset(batch_size, seed=seed, process_index=process_index,
                        process_count=process_count)[step]

  def iterator(self, batch_size: int, *, seed: int, process_index: int = 0,
               process_count: int = 1) -> grain.DatasetIterator:
    """Batches 0, 1, ... read ahead by threads; get_state/set_state for checkpoints."""
    ds = self.dataset(batch_size, seed=seed, process_index=process_index,
                      process_count=process_count)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=READ_THREADS,
                                                     prefetch_buffer_size=PREFETCH_BATCHES)))

  def order_fingerprint(self, batch_size: int, *, seed: int, steps: int = 4) -> str:
    ds = self.dataset(batch_size, seed=seed)
    h = hashlib.sha256()
    for step in range(steps):
      h.update(ds[step]['tokens'].tobytes())
    return h.hexdigest()[:16]

  def heldout_rows(self, split: str, lang: str) -> rows_lib.Rows:
    """All rows of a held-out split of one language, in memory (held-out splits are small)."""
    records = self.records(split, lang)
    rows = [records[i] for i in range(len(records))]
    return rows_lib.Rows({k: np.stack([r[k] for r in rows]) for k in rows[0]})


class _RowsSource:
  """In-memory Rows as a grain source of row dicts."""

  def __init__(self, rows: rows_lib.Rows):
    self._arrays = {k: v for k, v in rows.arrays.items() if k != 'stream'}
    self._n = len(rows)

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, i: int) -> dict:
    return {k: v[i] for k, v in self._arrays.items()}


def _stream_seed(seed: int, stream: int) -> int:
  return int.from_bytes(hashlib.sha256(f'{seed}:{stream}'.encode()).digest()[:4], 'little')


def _with_stream(stream: int, row: dict) -> dict:
  return dict(row, stream=np.int32(stream))
