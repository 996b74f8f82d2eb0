"""Post-training int8 quantization of the Transformer blocks' weight matmuls.

Each kernel of attention (query, key, value, out) and of the feed-forward layers (wi,
wo) becomes int8 with one float32 scale per output feature (symmetric, absmax / 127);
at run time the activations are quantized per row and the product is an int8 x int8 ->
int32 matmul (plm/nn/quant.py). Embeddings, LayerNorms, biases and the
vocabulary head stay float32. A quantized model is the same architecture with
model.quant='int8'; its params save and load through orbax like any others.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np

from plm.errors import UserError
from plm.nn import quant

BLOCK_KERNELS = ('query', 'key', 'value', 'out', 'wi', 'wo')  # the modules quantized


def check_backend(mode: str) -> None:
  """`mode` is known and this backend compiles its matmul, else one clear error."""
  if mode not in quant.MODES:
    raise UserError(f'compress.quantize={mode!r} is unknown; use one of {quant.MODES} '
                    "(or '' for none)")
  x = jnp.ones((2, 4), jnp.int8)
  try:
    jax.jit(lambda a: jax.lax.dot_general(a, a.T, (((1,), (0,)), ((), ())),
                                          preferred_element_type=jnp.int32))(x).block_until_ready()
  except Exception as e:  # pylint: disable=broad-except  # XLA's own 'unimplemented' errors
    raise UserError(f'compress.quantize={mode!r} needs int8 x int8 -> int32 matmuls, which '
                    f'the {jax.default_backend()} backend cannot run ({type(e).__name__}: '
                    f'{e}); run the model in float32 or on another backend') from None


def quantize_kernel(kernel: np.ndarray, n_in: int):
  """(int8 kernel, float32 scale over the output dims) of a float kernel whose first
  `n_in` dims are contracted."""
  kernel = np.asarray(kernel, np.float32)
  absmax = np.max(np.abs(kernel), axis=tuple(range(n_in)))
  scale = np.maximum(absmax, 1e-12) / 127.0
  q = np.clip(np.round(kernel / scale), -127, 127).astype(np.int8)
  return q, scale.astype(np.float32)


def quantize_params(params, mode: str = 'int8'):
  """The params of the same model with model.quant=mode (a new tree; `params` unchanged)."""
  check_backend(mode)
  flat = flax.traverse_util.flatten_dict(jax.device_get(params))
  out = {}
  for path, value in flat.items():
    if path[-1] == 'kernel' and len(path) > 1 and path[-2] in BLOCK_KERNELS:
      n_in = 2 if path[-2] == 'out' else 1  # out contracts (heads, kv)
      out[path], out[path[:-1] + ('scale',)] = quantize_kernel(value, n_in)
    else:
      out[path] = value
  return flax.traverse_util.unflatten_dict(out)


def nbytes(params) -> int:
  """Bytes the params take in memory (and, uncompressed, on disk)."""
  return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(params)))
