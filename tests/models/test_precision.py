"""model.dtype=bfloat16 for every family with a dtype field, against float32 on the same
weights; and the float32 path unchanged bit for bit.

`float32_reference.npz` holds each family's float32 outputs and parameter gradients, as the
code before bf16 mixed precision computed them (commit ef036c8) on XLA:CPU. Rewrite it only
for a deliberate change of the float32 maths: `PYTHONPATH=. python tests/models/test_precision.py`.
LASER has no dtype field (its LSTM runs in float32), TransE neither.
"""
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks, models

pytestmark = pytest.mark.model

REFERENCE = os.path.join(os.path.dirname(__file__), 'data', 'float32_reference.npz')
B, L, V = 2, 8, 29


def _config(name, **fields):
  mc = models.config(name)
  mc.update(size='test', layers=2, hidden=16, heads=2, ff=32, max_len=16, dropout=0.0,
            attention_dropout=0.0, **fields)
  return mc


def _tokens(seed=0):
  rng = np.random.RandomState(seed)
  valid = np.arange(L)[None] < np.array([L, 5])[:, None]
  tokens = np.where(valid, rng.randint(5, V, (B, L)), 0).astype(np.int32)
  positions = np.broadcast_to(np.arange(L, dtype=np.int32), (B, L))
  return jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(valid)


def _encoder_inputs():
  tokens, positions, valid = _tokens()
  types = jnp.asarray(np.arange(L)[None] >= np.array([4, 3])[:, None], jnp.int32)
  return dict(tokens=tokens, positions=positions, mask=masks.seq2seq_mask(types, valid),
              token_types=types)


def _seq2seq_inputs():
  src, src_pos, src_valid = _tokens(0)
  tgt, tgt_pos, tgt_valid = _tokens(1)
  return dict(src_tokens=src, src_positions=src_pos, src_mask=masks.padding_mask(src_valid),
              tgt_tokens=tgt, tgt_positions=tgt_pos, tgt_mask=masks.causal_mask(tgt_valid),
              cross_mask=masks.cross_attention_mask(tgt_valid, src_valid))


def _ernie_inputs():
  tokens, positions, valid = _tokens()
  entities = jnp.asarray(np.where(np.arange(L) % 3 == 1, np.arange(L) % 6 + 1, 0)[None]
                         .repeat(B, 0) * valid, jnp.int32)
  return dict(tokens=tokens, positions=positions, mask=masks.padding_mask(valid),
              entities=entities,
              entity_table=jax.random.normal(jax.random.PRNGKey(3), (7, 3)),
              candidates=jnp.array([1, 2, 5]))


def _ernie2_outputs(module, tokens, positions, mask, tasks):
  x = module(tokens, positions, mask, tasks=tasks)
  return {'vocab': module.vocab_logits(x), 'tags': module.token_logits(x, 'tags'),
          'pair': module.sentence_logits(x, 'pair')}


def _ernie2_inputs():
  tokens, positions, valid = _tokens()
  return dict(tokens=tokens, positions=positions, mask=masks.padding_mask(valid),
              tasks=jnp.ones((B, L), jnp.int32))


# family -> (model config, keyword inputs, apply method or None)
FAMILIES = {
    'encoder_lm': (lambda: _config('encoder_lm'), _encoder_inputs, None),  # BERT/XLM/UNILM
    'classifier': (lambda: _config('classifier', num_classes=3), _encoder_inputs, None),
    'seq2seq': (lambda: _config('seq2seq', decoder_layers=2), _seq2seq_inputs, None),  # MASS
    'ernie': (lambda: _config('ernie', num_entities=6, entity_dim=3), _ernie_inputs, None),
    'ernie2': (lambda: _config('ernie2', num_tasks=2, task_heads=(('tags', 4), ('pair', 2))),
               _ernie2_inputs, _ernie2_outputs),
}


def _leaves(tree, prefix):
  return {prefix + jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def family_outputs(family: str, dtype: str) -> dict:
  """Outputs and parameter gradients (of a fixed scalar of the outputs) of `family` with
  model.dtype=`dtype`, on random weights drawn on the host (std 0.3: outputs depend on
  their context)."""
  make_config, make_inputs, method = FAMILIES[family]
  mc = make_config()
  mc.dtype = dtype
  model, inputs = models.build(mc, V), make_inputs()
  shapes = jax.eval_shape(lambda: nn.unbox(
      model.init(jax.random.PRNGKey(0), **inputs, method=method))['params'])
  rng = np.random.RandomState(0)
  params = jax.tree_util.tree_map(
      lambda x: 0.3 * rng.standard_normal(x.shape).astype(np.float32), shapes)

  def run(p):
    out = model.apply({'params': p}, **inputs, method=method)
    scalar = sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(out))
    return scalar, out
  grads, out = jax.jit(jax.grad(run, has_aux=True))(params)
  return {**_leaves(out, 'out'), **_leaves(grads, 'grad')}


ON_CPU = pytest.mark.skipif(jax.default_backend() != 'cpu',
                            reason='the reference and the dot kernels checked are XLA:CPU\'s')


@ON_CPU
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_float32_is_bitwise_unchanged(family):
  want = np.load(REFERENCE)
  got = family_outputs(family, 'float32')
  keys = sorted(k for k in want.files if k.startswith(family + '/'))
  assert keys and sorted(family + '/' + k for k in got) == keys
  for k in keys:
    np.testing.assert_array_equal(got[k.split('/', 1)[1]], want[k], err_msg=k)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_bfloat16_matches_float32_to_bf16_rounding(family):
  fp32, bf16 = family_outputs(family, 'float32'), family_outputs(family, 'bfloat16')
  assert fp32.keys() == bf16.keys()
  top = max(np.linalg.norm(x) for x in fp32.values())
  for k in fp32:
    assert bf16[k].dtype == np.float32, k  # outputs and gradients come back float32
    err = np.linalg.norm(bf16[k] - fp32[k])
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 per operand): a few ulps over two
    # layers (gradients that are zero in exact maths, as the key bias's, against the
    # largest); and it does differ, so model.dtype reached the model.
    assert err <= 0.05 * max(np.linalg.norm(fp32[k]), 1e-3 * top), k
  assert any(np.any(bf16[k] != fp32[k]) for k in fp32)


@ON_CPU
@pytest.mark.parametrize('family', ['encoder_lm', 'seq2seq'])
def test_bfloat16_dots_stay_bf16_in_the_compiled_step(family):
  """XLA:CPU upcasts a bf16 dot it has no kernel for to float32 (float32 speed) or fails:
  every dot of the compiled forward and backward must keep bf16 operands. (ERNIE's pooler
  and NSP head, [batch, H] rows, do get upcast: too small to matter.)"""
  make_config, make_inputs, method = FAMILIES[family]
  mc = make_config()
  mc.dtype = 'bfloat16'
  model, inputs = models.build(mc, V), make_inputs()
  params = jax.eval_shape(lambda: nn.unbox(
      model.init(jax.random.PRNGKey(0), **inputs, method=method))['params'])
  loss = lambda p: sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(
      model.apply({'params': p}, **inputs, method=method)))
  hlo = jax.jit(jax.grad(loss)).lower(params).compile().as_text()
  dtypes = dict(re.findall(r'%(\S+) = (\w+)\[', hlo))  # instruction name -> element type
  operands = re.findall(r' dot\(%(\S+), %(\S+?)\)', hlo)
  assert len(operands) >= 3 * 2 * 8  # forward + 2 gradients, 2 layers x 8 matmuls at least
  assert {(dtypes[a], dtypes[b]) for a, b in operands} == {('bf16', 'bf16')}


def write_reference():
  np.savez_compressed(REFERENCE, **{f'{f}/{k}': v for f in FAMILIES
                                    for k, v in family_outputs(f, 'float32').items()})


if __name__ == '__main__':
  write_reference()
