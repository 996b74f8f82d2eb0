"""The `retrieve` job: cross-lingual retrieval of held-out Bible verses.

  python -m plm.main --config=configs/xlm.py --config.job=retrieve --workdir=runs/xlm

The test-split table of the newest checkpoint (plm/evaluate/bible_retrieval.py),
printed and written as JSON (retrieval.output, default {workdir}/retrieval_test.json).
"""
import json
import os

from plm import workdir as workdir_lib
from plm.evaluate import bible_retrieval


def retrieve(config, workdir: str) -> dict:
  loaded = workdir_lib.load(workdir, config)
  table = bible_retrieval.Evaluator(loaded.config, loaded.tokenizer, loaded.model)(
      loaded.params, 'test')
  print(bible_retrieval.format_table(table), flush=True)
  output = config.retrieval.output or os.path.join(os.path.abspath(os.path.expanduser(workdir)),
                                                   'retrieval_test.json')
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, 'w', encoding='utf-8') as f:
    json.dump(table, f, indent=2)
  print(f'wrote {output}', flush=True)
  return table
