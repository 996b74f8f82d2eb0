"""Model sizes by short name.

BERT sizes from Turc et al. 2019, "Well-Read Students Learn Better" (tiny .. medium)
and Devlin et al. 2019 (base, large); XLM's from Lample & Conneau 2019, Sec. 5.
`test` is ours: the smallest shape that still exercises every code path, for CPU tests.
"""

from plm.errors import UserError

SIZES = {
    #            layers, hidden, heads, ff
    'test': dict(layers=2, hidden=64, heads=4, ff=256),
    'tiny': dict(layers=2, hidden=128, heads=2, ff=512),  # BERT-Tiny
    'mini': dict(layers=4, hidden=256, heads=4, ff=1024),  # BERT-Mini
    'small': dict(layers=4, hidden=512, heads=8, ff=2048),  # BERT-Small
    'medium': dict(layers=8, hidden=512, heads=8, ff=2048),  # BERT-Medium
    'base': dict(layers=12, hidden=768, heads=12, ff=3072),  # BERT-Base
    'large': dict(layers=24, hidden=1024, heads=16, ff=4096),  # BERT-Large
    'xlm': dict(layers=12, hidden=1024, heads=8, ff=4096),  # XLM (MLM/TLM, 15 languages)
}


def get(name: str) -> dict:
  if name not in SIZES:
    raise UserError(f'model.size={name!r} is unknown; use one of {sorted(SIZES)}')
  return dict(SIZES[name])
