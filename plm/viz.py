"""Pictures of plm's masks (matplotlib, an optional test extra; training never imports it).

  python -c "from plm import viz; viz.save_unilm_masks_png('experiments/unilm/masks.png')"
"""
import numpy as np

from plm import masks
from plm.errors import MissingFileError

TITLES = ('bidirectional', 'left-to-right', 'right-to-left', 'seq2seq')


def unilm_example_masks(source_len: int = 4, target_len: int = 4) -> np.ndarray:
  """[4, L, L] bool: one example's mask under each UNILM objective, plm.masks id order."""
  length = source_len + target_len
  types = np.array([[0] * source_len + [1] * target_len] * 4)
  ids = np.array([masks.BIDIRECTIONAL, masks.LEFT_TO_RIGHT, masks.RIGHT_TO_LEFT, masks.SEQ2SEQ])
  return np.asarray(masks.unilm_mask(ids, types, np.ones((4, length), bool)))[:, 0]


def save_unilm_masks_png(path: str, source_len: int = 4, target_len: int = 4) -> None:
  """Draws the four masks side by side: row = query, column = key, dark = may attend.

  Dashed lines mark the source/target boundary (it only changes the seq2seq mask).
  """
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('plm.viz needs matplotlib: pip install -e ".[test]"') from e
  grids = unilm_example_masks(source_len, target_len)
  labels = [f's{i + 1}' for i in range(source_len)] + [f't{i + 1}' for i in range(target_len)]
  edge = source_len - 0.5
  fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
  for ax, grid, title in zip(axes, grids, TITLES):
    ax.imshow(grid, cmap='Blues', vmin=-0.3, vmax=1.0)
    ax.set_title(title)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(np.arange(len(labels) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(labels) + 1) - 0.5, minor=True)
    ax.grid(which='minor', color='white', linewidth=1)
    ax.tick_params(which='minor', length=0)
    ax.axhline(edge, color='crimson', linestyle='--', linewidth=1)
    ax.axvline(edge, color='crimson', linestyle='--', linewidth=1)
  axes[0].set_ylabel('query')
  for ax in axes:
    ax.set_xlabel('key')
  fig.suptitle(f'UNILM attention masks (dark = may attend; source s1..s{source_len} | '
               f'target t1..t{target_len})', fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=80, bbox_inches='tight')
  plt.close(fig)


def read_scalars(tb_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps, values)} of every scalar in the TensorBoard event files under `tb_dir`
  (a run's {workdir}/tb), for plotting loss curves without TensorBoard."""
  import glob  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(os.path.join(tb_dir, 'events.out.tfevents.*')))
  if not files:
    raise MissingFileError(f'no TensorBoard event files in {tb_dir}; train first (a run writes '
                           'them to {workdir}/tb)')
  points = {}
  for path in files:
    with open(path, 'rb') as f:
      data = f.read()
    at = 0
    while at + 12 <= len(data):  # TFRecord: length, its crc, the record, its crc
      (length,) = struct.unpack('<Q', data[at:at + 8])
      record = data[at + 12:at + 12 + length]
      at += 12 + length + 4
      event = event_pb2.Event.FromString(record)
      for v in event.summary.value:
        if v.HasField('simple_value'):
          points.setdefault(v.tag, {})[event.step] = v.simple_value
  return {tag: (np.array(sorted(p)), np.array([p[s] for s in sorted(p)]))
          for tag, p in points.items()}


def save_curves_png(path: str, curves: dict, *, xlabel: str, ylabel: str, title: str,
                    baselines: dict | None = None) -> None:
  """Learning curves: {label: (x, y)} as lines with markers, {label: y} as dashed levels."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for label, (x, y) in curves.items():
    ax.plot(x, y, marker='o', label=label)
  for label, level in (baselines or {}).items():
    ax.axhline(level, linestyle='--', linewidth=1, color='grey')
    ax.annotate(label, (0.01, level), xycoords=('axes fraction', 'data'), fontsize=8,
                va='bottom', color='grey')
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
