"""XLM's language sampling: the formula, the vocabulary's sample, and drawn batches."""
import numpy as np
import pytest

from plm.data import mixing
from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.data import sampling


def test_probabilities_follow_the_formula():
  sizes = [900, 90, 10]
  q = sampling.language_probs(sizes, 0.7)
  p = np.array(sizes) / 1000
  np.testing.assert_allclose(q, p ** 0.7 / np.sum(p ** 0.7), rtol=1e-12)
  assert q[2] > p[2] and q[0] < p[0]  # flattened: the small language gains
  np.testing.assert_allclose(sampling.language_probs(sizes, 1.0), p, rtol=1e-12)
  np.testing.assert_allclose(sampling.language_probs(sizes, 0.0), [1 / 3] * 3, rtol=1e-12)
  # By hand, alpha 0.5 on shares 0.8 / 0.2: sqrt(.8) / (sqrt(.8) + sqrt(.2)) = 2/3.
  np.testing.assert_allclose(sampling.language_probs([8, 2], 0.5), [2 / 3, 1 / 3], rtol=1e-12)
  with pytest.raises(ValueError, match='alpha=-1 must be >= 0'):
    sampling.language_probs(sizes, -1)


def test_vocab_sentences_upsample_the_small_language():
  texts = {'en': [[f'en {i}' for i in range(80)]], 'es': [[f'es {i}' for i in range(10)],
                                                         [f'es {i}' for i in range(10, 20)]]}
  out = sampling.vocab_sentences(texts, 0.5, seed=3)
  assert len(out) == 100
  es = [s for s in out if s.startswith('es')]
  assert len(es) == round(100 / 3)  # q_es = 1/3 (see above): 33 of 100
  assert set(es) == {f'es {i}' for i in range(20)}  # every es sentence at least once
  en = [s for s in out if s.startswith('en')]
  assert len(en) == 67 and len(set(en)) == 67  # sampled without replacement
  assert out == sampling.vocab_sentences(texts, 0.5, seed=3)
  assert sorted(sampling.vocab_sentences(texts, 1.0)) == sorted(
      s for docs in texts.values() for d in docs for s in d)  # alpha 1: the corpus itself


def _stream(num_rows, lang, tokens_per_row=4):
  """Rows whose token is (lang + 1) * 1000 + row, so a drawn row names its stream and index."""
  tokens = np.zeros((num_rows, 4), np.int32)
  tokens[:, :tokens_per_row] = (lang + 1) * 1000 + np.arange(num_rows)[:, None]
  seg = (tokens > 0).astype(np.int32)
  return rows_lib.Rows(dict(tokens=tokens, segment_ids=seg, positions=seg * 0,
                            langs=seg * lang))


def _mix(alpha, tlm_share=0.0):
  mono = {'a': _stream(300, 0), 'b': _stream(60, 1)}
  tlm = {'a-c': _stream(40, 2)} if tlm_share else {}
  tokens = lambda ds: float(np.sum(ds.arrays['segment_ids'] > 0))
  weights = mixing.stream_weights({n: tokens(d) for n, d in mono.items()},
                                  {n: tokens(d) for n, d in tlm.items()}, alpha, tlm_share)
  return mixing.MixedDataset({**mono, **tlm}, weights, ('a', 'b', 'c'))


def _shares(ds, steps=300, batch_size=32, seed=0):
  batches = [ds.batch(s, batch_size, seed=seed) for s in range(steps)]
  streams = np.concatenate([b['tokens'][:, 0] // 1000 - 1 for b in batches])
  # Each row's stream id names the stream its tokens came from (a, b, a-c: 0, 1, 2).
  np.testing.assert_array_equal(np.concatenate([b['stream'] for b in batches]), streams)
  return np.bincount(streams, minlength=3) / len(streams)


@pytest.mark.parametrize('alpha', [0.7, 1.0])
def test_drawn_language_shares_match_q(alpha):
  ds = _mix(alpha)
  q = sampling.language_probs([300, 60], alpha)  # rows of equal length: p = row shares
  np.testing.assert_allclose(ds.weights, q, rtol=1e-12)
  # 9,600 draws: the standard error of a share is below 0.005.
  np.testing.assert_allclose(_shares(ds)[:2], q, atol=0.02)
  if alpha == 1.0:  # proportional: 5/6 and 1/6
    np.testing.assert_allclose(_shares(ds)[:2], [5 / 6, 1 / 6], atol=0.02)


def test_tlm_share_of_rows():
  ds = _mix(0.7, tlm_share=0.5)
  q = sampling.language_probs([300, 60], 0.7)
  np.testing.assert_allclose(ds.weights, [0.5 * q[0], 0.5 * q[1], 0.5], rtol=1e-12)
  np.testing.assert_allclose(_shares(ds), ds.weights, atol=0.02)
  with pytest.raises(ValueError, match='tlm_pairs is empty'):
    mixing.stream_weights({'a': 1.0}, {}, 0.7, 0.5)
  with pytest.raises(ValueError, match=r'tlm_share=1.5 must be in \[0, 1\]'):
    mixing.stream_weights({'a': 1.0}, {'a-b': 1.0}, 0.7, 1.5)


def test_mixed_batches_are_a_pure_function_of_seed_and_step():
  ds = _mix(0.7, tlm_share=0.3)
  straight = [ds.batch(s, 16, seed=4) for s in range(30)]
  resumed = _mix(0.7, tlm_share=0.3)  # a fresh object, as after a restart
  for s in (29, 12, 0):
    assert set(straight[s]) == {*pipeline.KEYS, 'stream'}
    for k in straight[s]:
      np.testing.assert_array_equal(resumed.batch(s, 16, seed=4)[k], straight[s][k])
  assert not np.array_equal(ds.batch(3, 16, seed=5)['tokens'], straight[3]['tokens'])
  halves = [ds.batch(7, 16, seed=4, process_index=i, process_count=2) for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['tokens'] for h in halves]),
                                straight[7]['tokens'])
  assert ds.order_fingerprint(16, seed=4, steps=5) == resumed.order_fingerprint(16, seed=4,
                                                                                steps=5)


def test_each_stream_sees_its_rows_without_repeats_within_an_epoch():
  ds = _mix(1.0)
  rows = np.concatenate([ds.batch(s, 30, seed=1)['tokens'][:, 0] for s in range(10)])
  small = rows[rows // 1000 == 2] % 1000  # stream b: 60 rows over 300 slots = 5 epochs
  for epoch in range(5):  # slots 60e..60e+59 map to a permutation of b's rows
    slots = np.arange(300)[rows // 1000 == 2]
    in_epoch = small[(slots >= 60 * epoch) & (slots < 60 * (epoch + 1))]
    assert len(set(in_epoch)) == len(in_epoch)
