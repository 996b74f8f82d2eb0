"""Classification scores on held-out rows: accuracy, micro-F1 and macro-F1."""
from typing import Callable

import jax
import numpy as np


def predictions(predict: Callable, rows, batch_size: int):
  """(gold, predicted) class ids of every weighted example of `rows`, read once.

  predict(batch) -> (predicted ids [B], targets {'ids': [B], 'weights': [B]}); rows of
  weight 0 (padding) are left out.
  """
  gold, pred = [], []
  for batch in rows.iterate_once(batch_size):
    p, t = jax.device_get(predict(batch))
    keep = t['weights'] > 0
    gold.append(t['ids'][keep])
    pred.append(p[keep])
  return np.concatenate(gold), np.concatenate(pred)


def scores(gold: np.ndarray, pred: np.ndarray, names: tuple) -> dict:
  """Accuracy, micro-F1 (without a 'none' class when the task has one: TACRED's convention;
  single-label micro-F1 is accuracy otherwise) and macro-F1 over the classes present."""
  none = names.index('none') if 'none' in names else -1
  hit = gold == pred
  tp = np.sum(hit & (gold != none))
  predicted, actual = np.sum(pred != none), np.sum(gold != none)
  p, r = tp / max(predicted, 1), tp / max(actual, 1)
  f1s = []
  for c in np.unique(gold):
    tp_c = np.sum(hit & (gold == c))
    f1s.append(2 * tp_c / max(np.sum(pred == c) + np.sum(gold == c), 1))
  return dict(accuracy=float(hit.mean()), micro_f1=float(2 * p * r / max(p + r, 1e-12)),
              macro_f1=float(np.mean(f1s)), examples=int(len(gold)))


def evaluate(predict: Callable, rows, batch_size: int, names: tuple, majority: int) -> dict:
  """The model's and the majority-class baseline's scores on `rows`, and the gold counts."""
  gold, pred = predictions(predict, rows, batch_size)
  return dict(labels=names, model=scores(gold, pred, names),
              majority=scores(gold, np.full_like(gold, majority), names),
              test_label_counts=np.bincount(gold, minlength=len(names)).tolist())
