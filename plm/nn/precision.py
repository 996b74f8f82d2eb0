"""Mixed precision: bfloat16 operands, float32 accumulation and float32 results.

On a CPU with bf16 matrix units (avx512_bf16, AMX) XLA runs a bf16 x bf16 -> f32 dot
about twice (AMX: four times) as fast as a float32 one, while a bf16 -> bf16 dot takes a
path slower than float32 (experiments/benchmarks/matmul_peak.py). So with
model.dtype=bfloat16 only the contractions see bf16: their operands are rounded to bf16,
they accumulate and return float32, and everything between them (residuals, LayerNorm,
softmax, losses) stays float32. With float32 every helper here is the plain op, so the
float32 model computes exactly what it did before mixed precision
(tests/models/test_precision.py).
"""
import functools
import math
import string

import jax
import jax.numpy as jnp

Array = jax.Array
BF16 = jnp.bfloat16


def _canonical_dot(subscripts: str, x: Array, y: Array) -> Array:
  """einsum of bf16 x and y as one [batch, M, K] x [batch, K, N] -> f32 dot.

  XLA:CPU runs a bf16 dot on its fast kernel only in this canonical form: with a batched
  operand contracted on another axis it falls back to float32, or fails outright
  ('Unsupported element type for DotThunk'). So the operands are transposed here and the
  dot itself is left nothing to rearrange.
  """
  inputs, out = subscripts.split('->')
  xs, ys = inputs.split(',')
  batch = [c for c in out if c in xs and c in ys]
  contract = [c for c in xs if c in ys and c not in out]
  x_free = [c for c in out if c in xs and c not in ys]
  y_free = [c for c in out if c in ys and c not in xs]
  if batch + y_free + x_free == list(out) != batch + x_free + y_free:
    # y @ x gives the output's order as it is: no transpose after the dot
    return _canonical_dot(f'{ys},{xs}->{out}', y, x)
  size = dict(zip(xs, x.shape)) | dict(zip(ys, y.shape))
  prod = lambda cs: math.prod(size[c] for c in cs)
  def arrange(a, letters, order, shape):
    perm = [letters.index(c) for c in order]
    if perm != sorted(perm):
      # a barrier, so that XLA does not fold the transpose back into the dot
      a = jax.lax.optimization_barrier(jnp.transpose(a, perm))
    return a.reshape(shape)
  xt = arrange(x, xs, batch + x_free + contract, (prod(batch), prod(x_free), prod(contract)))
  yt = arrange(y, ys, batch + contract + y_free, (prod(batch), prod(contract), prod(y_free)))
  z = jax.lax.dot_general(xt, yt, (((2,), (1,)), ((0,), (0,))),
                          preferred_element_type=jnp.float32)
  order = batch + x_free + y_free
  z = z.reshape([size[c] for c in order])
  if order == list(out):
    return z
  return jnp.transpose(jax.lax.optimization_barrier(z), [order.index(c) for c in out])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bf16_einsum(subscripts: str, x: Array, y: Array) -> Array:
  return _canonical_dot(subscripts, x.astype(BF16), y.astype(BF16))


def _bf16_einsum_fwd(subscripts, x, y):
  xb, yb = x.astype(BF16), y.astype(BF16)
  # zero scalars carry the operands' dtypes (residuals must be arrays)
  return (_canonical_dot(subscripts, xb, yb),
          (xb, yb, jnp.zeros((), x.dtype), jnp.zeros((), y.dtype)))


def _bf16_einsum_bwd(subscripts, residuals, g):
  # The gradient products take a bf16 cotangent too, as autocast does: JAX's own
  # transpose would multiply the float32 cotangent by an operand upcast to float32,
  # a float32 dot at float32 speed.
  xb, yb, x_zero, y_zero = residuals
  inputs, out = subscripts.split('->')
  xs, ys = inputs.split(',')
  gb = g.astype(BF16)
  dx = _canonical_dot(f'{out},{ys}->{xs}', gb, yb)
  dy = _canonical_dot(f'{xs},{out}->{ys}', xb, gb)
  return dx.astype(x_zero.dtype), dy.astype(y_zero.dtype)


_bf16_einsum.defvjp(_bf16_einsum_fwd, _bf16_einsum_bwd)


def bf16_einsum(subscripts: str, x: Array, y: Array) -> Array:
  """jnp.einsum of two operands rounded to bf16, accumulated and returned in float32.

  `subscripts` is explicit ('bqhd,bkhd->bhqk'; no '...'), and every index of an operand
  appears in the other operand or the output (so each gradient is one einsum too).
  """
  inputs, out = subscripts.split('->')
  xs, ys = inputs.split(',')
  if '.' in subscripts or set(xs) - set(ys + out) or set(ys) - set(xs + out):
    raise ValueError(f'{subscripts}: an ellipsis, or an operand index summed alone')
  return _bf16_einsum(subscripts, x, y)


def bf16_dot_general(x: Array, y: Array, dimension_numbers, precision=None,
                     preferred_element_type=None) -> Array:
  """`jax.lax.dot_general` as bf16_einsum: the signature nn.Dense's `dot_general` calls.

  `precision` and `preferred_element_type` have no say: the operands are bf16, the result
  float32.
  """
  del precision, preferred_element_type
  (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
  letters = iter(string.ascii_letters)
  xs = [next(letters) for _ in range(x.ndim)]
  ys = [None] * y.ndim
  for i, j in zip(tuple(x_contract) + tuple(x_batch), tuple(y_contract) + tuple(y_batch)):
    ys[j] = xs[i]
  ys = [c or next(letters) for c in ys]
  x_free = [xs[i] for i in range(x.ndim) if i not in x_contract and i not in x_batch]
  y_free = [ys[j] for j in range(y.ndim) if j not in y_contract and j not in y_batch]
  out = [xs[i] for i in x_batch] + x_free + y_free  # lax.dot_general's output order
  return bf16_einsum(f"{''.join(xs)},{''.join(ys)}->{''.join(out)}", x, y)


def is_mixed(dtype) -> bool:
  """Whether `dtype` (model.dtype's compute dtype) means bf16 contractions."""
  return jnp.dtype(dtype) == jnp.dtype(BF16)


def dot_general(dtype):
  """nn.Dense's `dot_general` for the compute dtype: None (lax.dot_general) for float32."""
  return bf16_dot_general if is_mixed(dtype) else None


def matmul(x: Array, y: Array, dtype) -> Array:
  """x @ y of a 2-D y: x's last axis against y's first (bf16 operands when `dtype` is)."""
  if not is_mixed(dtype):
    return x @ y
  return bf16_dot_general(x, y, (((x.ndim - 1,), (0,)), ((), ())))


def einsum(subscripts: str, x: Array, y: Array, dtype) -> Array:
  """jnp.einsum of two operands (bf16_einsum when `dtype` is bf16)."""
  if not is_mixed(dtype):
    return jnp.einsum(subscripts, x, y)
  return bf16_einsum(subscripts, x, y)
