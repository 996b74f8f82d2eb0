"""The continual stage schedule (plm/data/schedule.py): allocation, order, resume, errors."""
import collections

import numpy as np
import pytest

from plm import meta as meta_lib
from plm.data import rows as rows_lib
from plm.data import schedule

TASKS = ('knowledge_masking', 'capitalization', 'sentence_distance')
STAGES = ({'steps': 300, 'tasks': {'knowledge_masking': 1.0}},
          {'steps': 700, 'tasks': {'knowledge_masking': 2.0, 'capitalization': 1.0,
                                   'sentence_distance': 0.5}})


def _rows(n, first):
  return rows_lib.Rows({'tokens': np.arange(first, first + n, dtype=np.int32)[:, None]})


def _dataset(seed=0, stages=STAGES):
  parsed = schedule.parse_stages(stages, TASKS)
  tasks = {'knowledge_masking': _rows(50, 0), 'capitalization': _rows(30, 1000),
           'sentence_distance': _rows(20, 2000)}
  return schedule.ScheduledDataset(tasks, parsed, seed)


def test_each_stage_allocates_exactly_the_configured_steps():
  data = _dataset()
  stage1 = collections.Counter(data.task_of(s) for s in range(300))
  stage2 = collections.Counter(data.task_of(s) for s in range(300, 1000))
  assert stage1 == {0: 300}
  # 700 steps shared 2 : 1 : 0.5 -> 400, 200, 100
  assert stage2 == {0: 400, 1: 200, 2: 100}
  assert schedule.allocate(10, {'a': 1, 'b': 1, 'c': 1}) == {'a': 4, 'b': 3, 'c': 3}
  # tasks are interleaved within a stage, not in blocks
  assert len({data.task_of(s) for s in range(300, 320)}) > 1


def test_batches_are_one_task_and_walk_through_its_rows():
  data = _dataset()
  seen = collections.defaultdict(list)
  for step in range(300, 450):
    b = data.batch(step, 10, seed=0)
    t = data.task_of(step)
    assert set(b['stream']) == {t}
    seen[t].extend(b['tokens'][:, 0].tolist())
  # capitalization: ~40 batches of 10 over 30 rows; each epoch a permutation of all 30
  cap = seen[1]
  assert len(cap) >= 60
  for epoch in range(len(cap) // 30):
    assert sorted(cap[epoch * 30:(epoch + 1) * 30]) == list(range(1000, 1030))


def test_a_resumed_schedule_continues_exactly():
  a, b = _dataset(seed=3), _dataset(seed=3)  # b: a fresh process resuming at step 512
  for step in range(512, 540):
    np.testing.assert_array_equal(a.batch(step, 8, seed=3)['tokens'],
                                  b.batch(step, 8, seed=3)['tokens'])
  assert a.fingerprint == b.fingerprint
  assert _dataset(seed=4).task_of(400) is not None


def test_stage_errors_name_the_fix():
  with pytest.raises(ValueError, match="unknown task 'capitalisation'.*'capitalization'"):
    schedule.parse_stages([{'steps': 5, 'tasks': {'capitalisation': 1.0}}], TASKS)
  with pytest.raises(ValueError, match=r"stages\[2\] drops \['capitalization'\]"):
    schedule.parse_stages([{'steps': 5, 'tasks': {'capitalization': 1.0}},
                           {'steps': 5, 'tasks': {'knowledge_masking': 1.0}}], TASKS)
  sequential = schedule.parse_stages([{'steps': 5, 'tasks': {'capitalization': 1.0}},
                                      {'steps': 5, 'tasks': {'knowledge_masking': 1.0}}],
                                     TASKS, continual=False)
  assert [set(s.shares) for s in sequential] == [{'capitalization'}, {'knowledge_masking'}]
  with pytest.raises(ValueError, match='share > 0'):
    schedule.parse_stages([{'steps': 5, 'tasks': {'capitalization': 0.0}}], TASKS)
  with pytest.raises(ValueError, match='outside the schedule'):
    _dataset().batch(1000, 4, seed=0)


def test_a_checkpoint_of_another_schedule_is_refused():
  saved = dict(vocab='v', model={}, **_dataset().meta)
  other = _dataset(stages=(STAGES[0], {'steps': 700, 'tasks': {
      'knowledge_masking': 1.0, 'capitalization': 1.0, 'sentence_distance': 1.0}}))
  meta_lib.check_meta(saved, dict(vocab='v', model={}, **_dataset().meta))  # same: fine
  with pytest.raises(ValueError, match='stage schedule'):
    meta_lib.check_meta(saved, dict(vocab='v', model={}, **other.meta))
