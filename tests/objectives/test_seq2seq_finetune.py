"""UNILM seq2seq fine-tuning: layout, masking counts and masks, and a toy fine-tune."""
import fractions
import lzma
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from plm import masks
from plm.decode import unilm
from plm.models.encoder import Encoder, EncoderLM
from plm.data import labelled, packing
from plm.objectives import base, seq2seq_finetune

PAD, UNK, BOS, EOS, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, BOS, EOS, MASK)
VOCAB, LENGTH, SLOTS, RATE = 40, 24, 16, 0.7
KJV = os.path.join(os.path.dirname(__file__), '..', '..', 'plm', 'data', 'corpora', 'bible',
                   'en_kjv.tsv.xz')


def expected_count(n, rate=RATE, slots=SLOTS):
  """The documented rule, computed independently with exact fractions."""
  if n == 0:
    return 0
  half_up = int(fractions.Fraction(str(rate)) * n + fractions.Fraction(1, 2))
  return min(slots, max(1, half_up))


def random_batch(rng, rows):
  examples, lengths = [], []
  for _ in range(rows):
    s, t = rng.integers(0, 10), rng.integers(0, 11)
    examples.append(packing.pack_pair(
        rng.integers(5, VOCAB, s), rng.integers(5, VOCAB, t), max_len=LENGTH, bos_id=BOS,
        eos_id=EOS))
    lengths.append((s, t))
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  return batch, np.asarray(lengths)


def run(batch, seed=0, rate=RATE, slots=SLOTS):
  fn = seq2seq_finetune.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL,
                             num_predictions=slots, target_mask_rate=rate)
  out = jax.jit(fn)(jax.random.PRNGKey(seed), jax.tree_util.tree_map(jnp.asarray, batch))
  return jax.tree_util.tree_map(np.asarray, out)


def test_pack_pair_layout():
  ex = packing.pack_pair([10, 11], [12, 13, 14], max_len=10, bos_id=BOS, eos_id=EOS)
  np.testing.assert_array_equal(ex['tokens'], [2, 10, 11, 3, 12, 13, 14, 3, 0, 0])
  np.testing.assert_array_equal(ex['token_types'], [0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(ex['valid'], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(ex['segment_ids'], ex['valid'])
  np.testing.assert_array_equal(ex['positions'], [0, 1, 2, 3, 4, 5, 6, 7, 0, 0])
  assert all(v.dtype == np.int32 and v.shape == (10,) for v in ex.values())
  full = packing.pack_pair([10] * 4, [12] * 3, max_len=10, bos_id=BOS, eos_id=EOS)
  assert full['valid'].all()  # 4 + 3 + 3 == max_len fits exactly


def test_pack_pair_restarts_target_positions():
  """'restart': target token j (and then the eos) shares source token j's position."""
  ex = packing.pack_pair([10, 11], [12, 13, 14], max_len=10, bos_id=BOS, eos_id=EOS,
                         restart_target_positions=True)
  np.testing.assert_array_equal(ex['tokens'], [2, 10, 11, 3, 12, 13, 14, 3, 0, 0])
  np.testing.assert_array_equal(ex['positions'], [0, 1, 2, 3, 1, 2, 3, 4, 0, 0])


def test_target_positions_must_be_continue_or_restart():
  fc = ml_collections.ConfigDict(dict(target_positions='reset'))
  with pytest.raises(ValueError, match="target_positions='reset'.*'continue'.*'restart'"):
    labelled.target_positions_restart(fc)
  fc.target_positions = 'restart'
  assert labelled.target_positions_restart(fc)


def test_pack_pair_too_long_raises():
  with pytest.raises(ValueError, match=r'source \(5 tokens\) \+ target \(3 tokens\).*= 11 > '
                     r'max_len=10.*finetune\.seq_len'):
    packing.pack_pair([10] * 5, [12] * 3, max_len=10, bos_id=BOS, eos_id=EOS)


def test_count_rule():
  counts = [seq2seq_finetune.num_masked(n, 0.7) for n in range(7)]
  assert counts == [0, 1, 1, 2, 3, 4, 4]  # 0.7, 1.4, 2.1, 2.8, 3.5 (half up), 4.2
  n = jnp.arange(40)
  np.testing.assert_array_equal(seq2seq_finetune.num_masked(n, 0.7),
                                [expected_count(int(i), slots=99) for i in n])


def test_masking_and_attention_cell_by_cell():
  batch, lengths = random_batch(np.random.default_rng(0), 400)
  inputs, targets, weights = run(batch)
  tokens, types, valid = batch['tokens'], batch['token_types'], batch['valid']
  pos = inputs['predict_positions']
  rows = np.arange(len(tokens))[:, None]
  picked = weights > 0

  # Exactly the documented count of target tokens (target + its eos) per row.
  want = [expected_count(t + 1) for _, t in lengths]
  np.testing.assert_array_equal(weights.sum(-1), want)
  # Picks are distinct target positions; targets are the original tokens.
  assert (types[rows, pos][picked] == 1).all() and (valid[rows, pos][picked] == 1).all()
  assert all(len(set(p[w])) == w.sum() for p, w in zip(pos, picked))
  np.testing.assert_array_equal(targets, tokens[rows, pos])
  # Picked tokens become [MASK]; nothing else changes, the source never.
  masked = np.zeros_like(tokens, bool)
  masked[np.broadcast_to(rows, pos.shape)[picked], pos[picked]] = True
  np.testing.assert_array_equal(inputs['tokens'], np.where(masked, MASK, tokens))
  assert not masked[types == 0].any()
  # The final eos is maskable, at the rate any target token is.
  eos_at = lengths.sum(-1) + 2
  eos_rate = masked[np.arange(len(tokens)), eos_at].mean()
  assert abs(eos_rate - np.mean(np.divide(want, lengths[:, 1] + 1))) < 0.08
  # Attention is masks.seq2seq_mask cell by cell, also when fed segment_ids.
  ref = np.asarray(masks.seq2seq_mask(types, valid))
  np.testing.assert_array_equal(inputs['mask'], ref)
  np.testing.assert_array_equal(inputs['token_types'], types)
  np.testing.assert_array_equal(inputs['positions'], batch['positions'])
  no_valid = {k: v for k, v in batch.items() if k != 'valid'}
  np.testing.assert_array_equal(run(no_valid)[0]['mask'], ref)
  # Another key picks other positions.
  assert (run(batch, seed=1)[0]['tokens'] != inputs['tokens']).any()


def test_special_ids_inside_target_not_masked_but_eos_is():
  # Target = [MASK-id, BOS-id, 7]: only 7 and the final eos are eligible (rate 1).
  ex = packing.pack_pair([9], [MASK, BOS, 7], max_len=10, bos_id=BOS, eos_id=EOS)
  batch = {k: v[None] for k, v in ex.items()}
  _, targets, weights = run(batch, rate=1.0, slots=4)
  assert sorted(targets[0][weights[0] > 0]) == [EOS, 7]


def test_bad_rate_raises():
  with pytest.raises(ValueError, match='target_mask_rate'):
    seq2seq_finetune.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL,
                          num_predictions=4, target_mask_rate=0.0)


# --- Toy fine-tune on real text: copy a window of KJV characters. ---

WINDOW = 8  # characters per source and per target
FIRST_CHAR = 5


def kjv_windows():
  """Lower-case letters and spaces of the first 200 verses, as char-id windows."""
  with lzma.open(KJV, 'rt', encoding='utf-8') as f:
    verses = [next(f).split('\t', 1)[1].lower() for _ in range(200)]
  alphabet = ' abcdefghijklmnopqrstuvwxyz'
  ids = {c: FIRST_CHAR + i for i, c in enumerate(alphabet)}

  def windows(lines):
    text = np.asarray([ids[c] for c in ' '.join(lines) if c in ids], np.int32)
    n = len(text) // WINDOW
    return text[:n * WINDOW].reshape(n, WINDOW)

  return windows(verses[:160]), windows(verses[160:]), FIRST_CHAR + len(alphabet)


def host_init(model, seed, *args, **kwargs):
  """BERT-like params drawn on the host: `model.init` would compile a threefry per tensor."""
  rng = np.random.default_rng(seed)

  def draw(path, x):
    name = jax.tree_util.keystr(path)
    if 'kernel' in name or 'embedding' in name:
      value = rng.normal(0, 0.02, x.value.shape)
    else:
      value = np.full(x.value.shape, 1.0 if 'scale' in name else 0.0)
    return nn.Partitioned(jnp.asarray(value, jnp.float32), x.names)

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args, **kwargs)
  return jax.tree_util.tree_map_with_path(
      draw, shapes, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def copy_batch(windows):
  ex = [packing.pack_pair(w, w, max_len=2 * WINDOW + 3, bos_id=BOS, eos_id=EOS)
        for w in windows]
  return {k: jnp.asarray(np.stack([e[k] for e in ex])) for k in ex[0]}


def train_copy(model, objective, train_b, eval_b, steps: int):
  """(params, held-out metric sums before, after) of `steps` Adam steps (batch 64) through
  the step contract's objective, as the generate job trains it."""

  def loss_fn(params, rng, batch):
    inputs, targets = objective.prepare(rng, batch, {})
    sums = objective.loss(base.ModelFn(model, params, {}, True), inputs, targets, {})
    m = {k.split('/')[1]: v for k, v in sums.items()}
    return m['loss'] / m['weight'], m

  tx = optax.adam(3e-3)
  n_train = len(jax.tree_util.tree_leaves(train_b)[0])

  # One jit for every step and both evaluations: compiling dominates the runtime. Data are
  # arguments, not closed-over constants, so XLA does not constant-fold the objective's
  # random masking at compile time.
  @jax.jit
  def train_eval(params, rng, train_b, eval_b):
    k_eval, k_train = jax.random.split(rng)

    def step(carry, k):
      params, opt_state = carry
      k_rows, k_obj = jax.random.split(k)
      batch = jax.tree_util.tree_map(
          lambda x: x[jax.random.randint(k_rows, (64,), 0, n_train)], train_b)
      grads, _ = jax.grad(loss_fn, has_aux=True)(params, k_obj, batch)
      updates, opt_state = tx.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), None

    before = loss_fn(params, k_eval, eval_b)[1]
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)),
                                  jax.random.split(k_train, steps))
    return params, before, loss_fn(params, k_eval, eval_b)[1]  # same masks as `before`

  shapes = jax.eval_shape(lambda r, b: objective.prepare(r, b, {})[0], jax.random.PRNGKey(0),
                          eval_b)
  return train_eval(host_init(model, 0, **shapes), jax.random.PRNGKey(1), train_b, eval_b)


def test_finetune_learns_to_copy_real_text():
  train, held_out, vocab = kjv_windows()
  assert vocab <= 40 and len(train) > 1000 and len(held_out) > 200
  model = EncoderLM(Encoder(vocab_size=vocab, layers=2, hidden=32, heads=2, ff=64,
                            dropout=0.0, attention_dropout=0.0, max_len=2 * WINDOW + 3))
  # As the generate job trains it: one token head, 'seq2seq', through the step contract.
  objective = base.token_objective('seq2seq', seq2seq_finetune.make(
      mask_id=MASK, vocab_size=vocab, special_ids=SPECIAL, num_predictions=WINDOW + 1))
  train_b, eval_b = copy_batch(train), copy_batch(held_out[:256])

  _, before, after = train_copy(model, objective, train_b, eval_b, steps=200)
  accuracy = float(after['correct'] / after['weight'])
  assert float(before['correct'] / before['weight']) < 0.2  # untrained: near chance
  assert float(after['loss']) < 0.5 * float(before['loss'])
  assert accuracy > 0.5, accuracy


def kjv_pieces(lines, seed: int, longest: int):
  """Lower-case letters and spaces of `lines` as char-id pieces of 4..`longest` characters."""
  ids = {c: FIRST_CHAR + i for i, c in enumerate(' abcdefghijklmnopqrstuvwxyz')}
  text = [ids[c] for c in ' '.join(lines) if c in ids]
  rng, out, at = np.random.default_rng(seed), [], 0
  while at + longest <= len(text):
    n = int(rng.integers(4, longest + 1))
    out.append(text[at:at + n])
    at += n
  return out


@pytest.mark.model
def test_restarted_positions_learn_to_copy_and_greedy_decoding_copies():
  """Issue 21's copy check in small: pieces of real text of varying length copied to
  themselves. With the target's positions restarted, 1,000 steps teach a 2-layer model to
  copy and greedy decoding (plm/decode/unilm.py) reproduces held-out pieces exactly.
  (1,000, not 600: at 600 steps the model is mid-way and float rounding decides how far,
  62 of 64 exact on one CPU and 49 on another, an AMD EPYC; at 1,000 it copies all 64.)
  (With UNILM's continued positions the offset changes with every source length: measured
  0.29 accuracy and no exact copy at 300 steps, against 0.89 here; experiments/unilm/.)"""
  longest = 12
  length = 2 * longest + 3
  with lzma.open(KJV, 'rt', encoding='utf-8') as f:
    verses = [next(f).split('\t', 1)[1].lower() for _ in range(200)]
  train, held_out = kjv_pieces(verses[:160], 0, longest), kjv_pieces(verses[160:], 1, longest)
  vocab = FIRST_CHAR + 27

  def rows(pieces):
    ex = [packing.pack_pair(p, p, max_len=length, bos_id=BOS, eos_id=EOS,
                            restart_target_positions=True) for p in pieces]
    return {k: jnp.asarray(np.stack([e[k] for e in ex])) for k in ex[0]}

  model = EncoderLM(Encoder(vocab_size=vocab, layers=2, hidden=32, heads=2, ff=64, dropout=0.0,
                            attention_dropout=0.0, max_len=length, num_segments=2))
  objective = base.token_objective('seq2seq', seq2seq_finetune.make(
      mask_id=MASK, vocab_size=vocab, special_ids=SPECIAL, num_predictions=longest + 1))
  train_b, eval_b = rows(train), rows(held_out[:256])

  params, _, held = train_copy(model, objective, train_b, eval_b, steps=1000)
  assert float(held['correct'] / held['weight']) > 0.95  # measured 1.0
  sources = held_out[:64]
  decoder = unilm.make_decoder(
      model, mask_id=MASK, eos_id=EOS, pad_id=PAD, batch_size=64, prompt_width=longest + 2,
      max_len=length, beam_size=1, length_penalty=1.0, no_repeat_ngram=0, restart_positions=True)
  prompt, valid = unilm.left_pad(sources, longest + 2, bos_id=BOS, eos_id=EOS, pad_id=PAD)
  out = np.asarray(decoder(nn.unbox(params)['params'], prompt, valid))
  exact = sum(unilm.strip(row, EOS) == list(src) for row, src in zip(out, sources))
  assert exact >= 58, exact  # measured 64 of 64


def test_pack_pair_pseudo_layout():
  ex = packing.pack_pair([10, 11], [12, 13], max_len=12, bos_id=BOS, eos_id=EOS,
                         pseudo_target=True)
  np.testing.assert_array_equal(ex['tokens'], [2, 10, 11, 3, 12, 13, 3, 12, 13, 3, 0, 0])
  np.testing.assert_array_equal(ex['token_types'], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(ex['pseudo'], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(ex['positions'], [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 0, 0])
  np.testing.assert_array_equal(ex['valid'], [1] * 10 + [0, 0])
  with pytest.raises(ValueError, match='pseudo masking.*= 11 > max_len=10'):
    packing.pack_pair([10, 11, 14], [12, 13], max_len=10, bos_id=BOS, eos_id=EOS,
                      pseudo_target=True)


def test_pseudo_objective_predicts_every_target_token_from_its_twin():
  ex = packing.pack_pair([10, 11], [12, 13], max_len=12, bos_id=BOS, eos_id=EOS,
                         restart_target_positions=True, pseudo_target=True)
  batch = {k: jnp.asarray(v[None]) for k, v in ex.items()}
  fn = seq2seq_finetune.make_pseudo(mask_id=MASK, vocab_size=VOCAB, num_predictions=5)
  inputs, targets, weights = jax.tree_util.tree_map(np.asarray, jax.jit(fn)(None, batch))
  np.testing.assert_array_equal(inputs['tokens'][0],
                                [2, 10, 11, 3, 12, 13, 3, MASK, MASK, MASK, 0, 0])
  np.testing.assert_array_equal(inputs['predict_positions'][0, :3], [7, 8, 9])
  np.testing.assert_array_equal(targets[0, :3], [12, 13, EOS])
  np.testing.assert_array_equal(weights[0], [1, 1, 1, 0, 0])
  np.testing.assert_array_equal(inputs['positions'][0], [0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 0, 0])
  np.testing.assert_array_equal(inputs['mask'], masks.pseudo_seq2seq_mask(
      ex['token_types'][None], ex['pseudo'][None], ex['positions'][None], ex['valid'][None]))
  with pytest.raises(ValueError, match=r'num_predictions=4 < \(row length 12 - 2\) // 2'):
    seq2seq_finetune.make_pseudo(mask_id=MASK, vocab_size=VOCAB, num_predictions=4)(None, batch)
  plain = {k: v for k, v in batch.items() if k != 'pseudo'}
  with pytest.raises(ValueError, match='target_masking'):
    fn(None, plain)
