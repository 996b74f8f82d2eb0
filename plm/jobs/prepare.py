r"""The `prepare` job: tokenize and pack a corpus once into array_record shards.

  python -m plm.main --config=configs/xlm.py --config.job=prepare \
      --config.data.corpus=textdir --config.data.text_dir=~/wiki \
      --config.data.prepared_dir=~/wiki_prepared --workdir=runs/xlm_wiki
  python -m plm.main --config=configs/xlm.py --config.data.prepared_dir=~/wiki_prepared \
      --workdir=runs/xlm_wiki

Reads data.corpus with the in-memory path's readers, tokenizes with the run's vocabulary
(data.vocab_path, or trains {workdir}/vocab/spm.model as `train` would), and writes every
split of every language in data.languages to data.prepared_dir (plm/data/prepared.py).
A later `train` with the same data.prepared_dir streams it instead of reading the corpus.
"""
from plm import run
from plm import workdir as workdir_lib
from plm.data import prepared
from plm.errors import UserError


def prepare_job(config, workdir: str) -> dict:
  """Writes data.prepared_dir; returns its prepared.json content."""
  if not config.data.prepared_dir:
    raise UserError('job=prepare writes data.prepared_dir, which is empty; set '
                    '--config.data.prepared_dir=<new directory>')
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir_lib.workdir_path(workdir))
  meta = prepared.prepare(config.data, tokenizer, config.data.prepared_dir)
  print(f'prepare: wrote {config.data.prepared_dir} (vocabulary {meta["vocab"]}, rows of '
        f'{meta["packing"]["seq_len"]} tokens, data fingerprint {meta["fingerprint"]}); train '
        f'with --config.data.prepared_dir={config.data.prepared_dir}', flush=True)
  return meta
