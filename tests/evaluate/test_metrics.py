"""plm/evaluate: the held-out table and classification scores."""
import numpy as np
import pytest

from plm.evaluate import classification, heldout


class ListRows:
  """Rows whose iterate_once yields the given batches."""

  def __init__(self, batches):
    self.batches = batches

  def iterate_once(self, batch_size):
    del batch_size
    return iter(self.batches)


def test_scores_drop_the_none_class_from_micro_f1():
  names = ('none', 'a', 'b')
  gold = np.array([0, 1, 1, 2, 0])
  pred = np.array([1, 1, 0, 2, 0])
  s = classification.scores(gold, pred, names)
  # not-none: 2 true positives of 3 predicted and 3 actual -> P = R = F1 = 2/3
  assert s['micro_f1'] == pytest.approx(2 / 3)
  assert s['accuracy'] == pytest.approx(3 / 5)
  # per class F1 = 2 TP / (predicted + actual): none 2/4, a 2/4, b 2/2
  assert s['macro_f1'] == pytest.approx(np.mean([1 / 2, 1 / 2, 1.0]))
  assert s['examples'] == 5


def test_classification_evaluate_reads_weighted_examples_only():
  def batch(ids, pred, weights):
    return dict(pred=np.array(pred), ids=np.array(ids), weights=np.array(weights))
  rows = ListRows([batch([1, 2], [1, 1], [1, 1]), batch([2, 0], [2, 2], [1, 0])])
  predict = lambda b: (b['pred'], dict(ids=b['ids'], weights=b['weights']))
  out = classification.evaluate(predict, rows, 2, ('x', 'y', 'z'), majority=2)
  assert out['model']['examples'] == 3 and out['model']['accuracy'] == pytest.approx(2 / 3)
  assert out['majority']['accuracy'] == pytest.approx(2 / 3)
  assert out['test_label_counts'] == [0, 1, 2]


def test_heldout_table_sums_every_batch_before_dividing():
  rows = ListRows([dict(loss=1.0, weight=1.0), dict(loss=9.0, weight=3.0)])
  sums = lambda b: {'mlm/loss': b['loss'], 'mlm/weight': b['weight']}
  seen = heldout.table(sums, {'en': rows}, 2)
  # (1 + 9) / (1 + 3), not the mean of the batch means (1 + 3) / 2
  assert seen['en']['mlm']['loss'] == pytest.approx(2.5)
  assert seen['en']['mlm']['predictions'] == 4
