"""Tests for plm.masks against brute-force pure-Python references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.data import packing

SEEDS = [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------
# Random batch generators (padding always at the END of rows).


def _rand_valid(rng, batch, length):
  """[B, L] int 0/1 with random real lengths in [0, L], padding at end."""
  lens = rng.randint(0, length + 1, size=batch)
  lens[0] = length  # one full row
  lens[-1] = max(1, lens[-1])
  return (np.arange(length)[None, :] < lens[:, None]).astype(np.int32)


def _rand_segments(rng, batch, length):
  """[B, L] packed segment ids like [1,1,1,2,2,3,0,0]."""
  seg = np.zeros((batch, length), np.int32)
  for b in range(batch):
    used = rng.randint(0, length + 1)
    pos, k = 0, 1
    while pos < used:
      n = rng.randint(1, used - pos + 1)
      seg[b, pos:pos + n] = k
      pos += n
      k += 1
  return seg


def _rand_seq2seq(rng, batch, length):
  """(token_types, valid): source prefix, target suffix, then padding.

  Padding positions get random token types, which must not matter.
  """
  valid = _rand_valid(rng, batch, length)
  types = rng.randint(0, 2, size=(batch, length)).astype(np.int32)
  for b in range(batch):
    n = int(valid[b].sum())
    split = rng.randint(0, n + 1)
    types[b, :split] = 0
    types[b, split:n] = 1
  return types, valid


# ---------------------------------------------------------------------------
# Pure-Python references, written straight from the definitions.


def ref_attention(qok, kok):
  return [[[bool(qok[b][i]) and bool(kok[b][j])
            for j in range(len(kok[b]))]
           for i in range(len(qok[b]))] for b in range(len(qok))]


def ref_padding(valid):
  return ref_attention(valid, valid)


def ref_packed(seg):
  return [[[seg[b][i] != 0 and seg[b][j] != 0 and seg[b][i] == seg[b][j]
            for j in range(len(seg[b]))]
           for i in range(len(seg[b]))] for b in range(len(seg))]


def ref_causal(valid):
  return [[[bool(valid[b][i]) and bool(valid[b][j]) and j <= i
            for j in range(len(valid[b]))]
           for i in range(len(valid[b]))] for b in range(len(valid))]


def ref_r2l(valid):
  return [[[bool(valid[b][i]) and bool(valid[b][j]) and j >= i
            for j in range(len(valid[b]))]
           for i in range(len(valid[b]))] for b in range(len(valid))]


def ref_seq2seq(types, valid):
  out = []
  for b in range(len(valid)):
    length = len(valid[b])
    rows = []
    for i in range(length):
      row = []
      for j in range(length):
        ok = bool(valid[b][i]) and bool(valid[b][j])
        if types[b][i] == 0:  # source query: all source keys
          ok = ok and types[b][j] == 0
        else:  # target query: all source keys + target keys j <= i
          ok = ok and (types[b][j] == 0 or j <= i)
        row.append(ok)
      rows.append(row)
    out.append(rows)
  return out


def ref_causal_packed(seg):
  return [[[seg[b][i] != 0 and seg[b][i] == seg[b][j] and j <= i
            for j in range(len(seg[b]))]
           for i in range(len(seg[b]))] for b in range(len(seg))]


def ref_unilm(obj, types, valid):
  refs = [ref_padding(valid), ref_causal(valid), ref_r2l(valid),
          ref_seq2seq(types, valid)]
  return [refs[obj[b]][b] for b in range(len(valid))]


def assert_mask(got, ref_bqk):
  """Checks dtype, shape [B,1,Q,K] and every cell against a reference."""
  got = np.asarray(got)
  expected = np.array(ref_bqk, dtype=bool)
  b, q, k = expected.shape
  assert got.dtype == np.bool_, got.dtype
  assert got.shape == (b, 1, q, k), got.shape
  for bi in range(b):
    for i in range(q):
      for j in range(k):
        assert got[bi, 0, i, j] == expected[bi, i, j], (bi, i, j)


def _shape(rng):
  return rng.randint(1, 7), rng.randint(1, 12)


# ---------------------------------------------------------------------------
# Randomized brute-force comparisons.


@pytest.mark.parametrize('seed', SEEDS)
def test_make_attention_mask_random(seed):
  rng = np.random.RandomState(seed)
  batch = rng.randint(1, 6)
  q = _rand_valid(rng, batch, rng.randint(1, 10))
  k = _rand_valid(rng, batch, rng.randint(1, 10))
  assert_mask(masks.make_attention_mask(q, k), ref_attention(q, k))
  assert_mask(masks.make_attention_mask(q.astype(bool), k.astype(bool)),
              ref_attention(q, k))


@pytest.mark.parametrize('seed', SEEDS)
def test_padding_mask_random(seed):
  rng = np.random.RandomState(seed)
  valid = _rand_valid(rng, *_shape(rng))
  assert_mask(masks.padding_mask(valid), ref_padding(valid))
  assert_mask(masks.padding_mask(valid.astype(bool)), ref_padding(valid))


@pytest.mark.parametrize('seed', SEEDS)
def test_packed_mask_random(seed):
  rng = np.random.RandomState(seed)
  seg = _rand_segments(rng, *_shape(rng))
  assert_mask(masks.packed_mask(seg), ref_packed(seg))


@pytest.mark.parametrize('seed', SEEDS)
def test_causal_mask_random(seed):
  rng = np.random.RandomState(seed)
  valid = _rand_valid(rng, *_shape(rng))
  assert_mask(masks.causal_mask(valid), ref_causal(valid))


@pytest.mark.parametrize('seed', SEEDS)
def test_right_to_left_mask_random(seed):
  rng = np.random.RandomState(seed)
  valid = _rand_valid(rng, *_shape(rng))
  assert_mask(masks.right_to_left_mask(valid), ref_r2l(valid))


@pytest.mark.parametrize('seed', SEEDS)
def test_seq2seq_mask_random(seed):
  rng = np.random.RandomState(seed)
  types, valid = _rand_seq2seq(rng, *_shape(rng))
  assert_mask(masks.seq2seq_mask(types, valid), ref_seq2seq(types, valid))


@pytest.mark.parametrize('seed', SEEDS)
def test_seq2seq_mask_interleaved_types(seed):
  # The definition does not assume source-then-target; pin it on any layout.
  rng = np.random.RandomState(100 + seed)
  batch, length = _shape(rng)
  valid = _rand_valid(rng, batch, length)
  types = rng.randint(0, 2, size=(batch, length)).astype(np.int32)
  assert_mask(masks.seq2seq_mask(types, valid), ref_seq2seq(types, valid))


@pytest.mark.parametrize('seed', SEEDS)
def test_cross_attention_mask_random(seed):
  rng = np.random.RandomState(seed)
  batch = rng.randint(1, 6)
  qv = _rand_valid(rng, batch, rng.randint(1, 10))
  kv = _rand_valid(rng, batch, rng.randint(1, 10))
  assert_mask(masks.cross_attention_mask(qv, kv), ref_attention(qv, kv))


@pytest.mark.parametrize('seed', SEEDS)
def test_causal_packed_mask_random(seed):
  rng = np.random.RandomState(seed)
  seg = _rand_segments(rng, *_shape(rng))
  assert_mask(masks.causal_packed_mask(seg), ref_causal_packed(seg))


@pytest.mark.parametrize('seed', SEEDS)
def test_combine_masks_random(seed):
  rng = np.random.RandomState(seed)
  batch, length = _shape(rng)
  a = rng.randint(0, 2, size=(batch, 1, length, length)).astype(bool)
  b = rng.randint(0, 2, size=(batch, 1, length, length)).astype(bool)
  c = rng.randint(0, 2, size=(batch, 1, length, length)).astype(bool)
  ref = [[[bool(a[x, 0, i, j] and b[x, 0, i, j] and c[x, 0, i, j])
           for j in range(length)] for i in range(length)]
         for x in range(batch)]
  assert_mask(masks.combine_masks(a, None, jnp.asarray(b), c), ref)
  single = [[[bool(a[x, 0, i, j]) for j in range(length)]
             for i in range(length)] for x in range(batch)]
  assert_mask(masks.combine_masks(None, a), single)


@pytest.mark.parametrize('seed', SEEDS)
def test_unilm_mask_jit_mixed_batch(seed):
  rng = np.random.RandomState(seed)
  length = rng.randint(1, 12)
  batch = 8
  types, valid = _rand_seq2seq(rng, batch, length)
  obj = np.array([0, 1, 2, 3] + list(rng.randint(0, 4, size=batch - 4)),
                 np.int32)
  rng.shuffle(obj)
  assert set(obj.tolist()) == {0, 1, 2, 3}
  fn = jax.jit(masks.unilm_mask)
  got = fn(jnp.asarray(obj), jnp.asarray(types), jnp.asarray(valid))
  assert_mask(got, ref_unilm(obj.tolist(), types.tolist(), valid.tolist()))


# ---------------------------------------------------------------------------
# Literal matrices.


def _lit(got):
  got = np.asarray(got)
  assert got.dtype == np.bool_
  return got.astype(np.int32).tolist()


def test_causal_literal_with_padding():
  got = masks.causal_mask(np.array([[1, 1, 1, 1, 0]]))
  assert np.shape(got) == (1, 1, 5, 5)
  assert _lit(got) == [[[
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0],
  ]]]


def test_seq2seq_literal_2src_3tgt_1pad():
  types = np.array([[0, 0, 1, 1, 1, 0]])
  valid = np.array([[1, 1, 1, 1, 1, 0]])
  got = masks.seq2seq_mask(types, valid)
  assert np.shape(got) == (1, 1, 6, 6)
  assert _lit(got) == [[[
      [1, 1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 0],
  ]]]


def test_pseudo_seq2seq_literal_2src_2tgt_2twins_1pad():
  types = np.array([[0, 0, 1, 1, 1, 1, 0]])
  pseudo = np.array([[0, 0, 0, 0, 1, 1, 0]])
  positions = np.array([[0, 1, 2, 3, 2, 3, 0]])
  valid = np.array([[1, 1, 1, 1, 1, 1, 0]])
  assert _lit(masks.pseudo_seq2seq_mask(types, pseudo, positions, valid)) == [[[
      [1, 1, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 0, 0, 1, 0, 0],   # twin of target 0: the source and itself
      [1, 1, 1, 0, 0, 1, 0],   # twin of target 1: the source, target 0 and itself
      [0, 0, 0, 0, 0, 0, 0],
  ]]]


def ref_pseudo(source, target):
  """The rule, row by row from (source, target) lengths: the real part is seq2seq; twin i
  sees the source, real targets 0..i-1 and itself; nothing real sees a twin."""
  n_src, n_tgt = source + 2, target + 1
  n = n_src + 2 * n_tgt
  m = np.zeros((n, n), bool)
  m[:n_src + n_tgt, :n_src + n_tgt] = ref_seq2seq(
      np.array([[0] * n_src + [1] * n_tgt]), np.ones((1, n_src + n_tgt)))[0]
  for i in range(n_tgt):
    q = n_src + n_tgt + i
    m[q, :n_src] = True
    m[q, n_src:n_src + i] = True
    m[q, q] = True
  return m


@pytest.mark.parametrize('restart', [False, True])
def test_pseudo_seq2seq_mask_from_packed_pairs(restart):
  rng = np.random.RandomState(int(restart))
  length, rows, refs = 24, [], []
  for _ in range(6):
    s, t = rng.randint(0, 9), rng.randint(0, 6)
    rows.append(packing.pack_pair(rng.randint(5, 30, s), rng.randint(5, 30, t), max_len=length,
                                  bos_id=2, eos_id=3, restart_target_positions=restart,
                                  pseudo_target=True))
    ref = np.zeros((length, length), bool)
    core = ref_pseudo(s, t)  # restarted positions must not change who sees whom
    ref[:len(core), :len(core)] = core
    refs.append(ref)
  b = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  assert_mask(masks.pseudo_seq2seq_mask(b['token_types'], b['pseudo'], b['positions'],
                                        b['valid']), refs)


def test_right_to_left_literal():
  got = masks.right_to_left_mask(np.array([[True, True, True, False]]))
  assert np.shape(got) == (1, 1, 4, 4)
  assert _lit(got) == [[[
      [1, 1, 1, 0],
      [0, 1, 1, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 0],
  ]]]


def test_packed_literal():
  got = masks.packed_mask(np.array([[1, 1, 1, 2, 2, 3, 0, 0]]))
  assert np.shape(got) == (1, 1, 8, 8)
  assert _lit(got) == [[[
      [1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 1, 0, 0, 0],
      [0, 0, 0, 1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0, 1, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0],
  ]]]


def test_causal_packed_literal():
  got = masks.causal_packed_mask(np.array([[1, 1, 2, 2, 0]]))
  assert _lit(got) == [[[
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 0, 1, 0, 0],
      [0, 0, 1, 1, 0],
      [0, 0, 0, 0, 0],
  ]]]


def test_cross_attention_literal_shapes_differ():
  got = masks.cross_attention_mask(np.array([[1, 1, 0]]),
                                   np.array([[1, 1, 1, 0]]))
  assert np.shape(got) == (1, 1, 3, 4)
  assert _lit(got) == [[[
      [1, 1, 1, 0],
      [1, 1, 1, 0],
      [0, 0, 0, 0],
  ]]]


def test_unilm_literal_all_objectives():
  obj = jnp.array([masks.BIDIRECTIONAL, masks.LEFT_TO_RIGHT,
                   masks.RIGHT_TO_LEFT, masks.SEQ2SEQ])
  types = jnp.array([[0, 1, 1]] * 4)
  valid = jnp.ones((4, 3), jnp.int32)
  got = jax.jit(masks.unilm_mask)(obj, types, valid)
  assert np.shape(got) == (4, 1, 3, 3)
  assert _lit(got) == [
      [[[1, 1, 1], [1, 1, 1], [1, 1, 1]]],
      [[[1, 0, 0], [1, 1, 0], [1, 1, 1]]],
      [[[1, 1, 1], [0, 1, 1], [0, 0, 1]]],
      [[[1, 0, 0], [1, 1, 0], [1, 1, 1]]],
  ]


def test_unilm_unknown_objective_is_all_false():
  got = masks.unilm_mask(jnp.array([7, -1]), jnp.zeros((2, 3), jnp.int32),
                         jnp.ones((2, 3), jnp.int32))
  assert not np.asarray(got).any()


def test_objective_constants():
  assert (masks.BIDIRECTIONAL, masks.LEFT_TO_RIGHT, masks.RIGHT_TO_LEFT,
          masks.SEQ2SEQ) == (0, 1, 2, 3)
  assert masks.OBJECTIVE_NAMES == ('bidirectional', 'left_to_right',
                                   'right_to_left', 'seq2seq')


def test_combine_masks_none_and_rank_check():
  assert masks.combine_masks() is None
  assert masks.combine_masks(None, None) is None
  with pytest.raises(ValueError):
    masks.combine_masks(jnp.ones((1, 1, 2, 2), bool), jnp.ones((2, 2), bool))
