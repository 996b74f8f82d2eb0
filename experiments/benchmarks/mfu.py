"""Model FLOPs of a BERT MLM train step, and this machine's peak fp32 and bf16 matmul rates."""
import time

import jax
import jax.numpy as jnp
import numpy as np


def train_flops(shape: dict, vocab: int, batch: int, seq_len: int, head_rows: int) -> float:
  """Matmul FLOPs (multiply-add = 2) of forward + backward (3x forward), as in MFU papers.

  Per layer and token: Q, K, V, output projections 8H^2, feed-forward 4HF, attention
  scores and weighted values 4TH. The MLM head (Dense H->H, tied decoder H->V) runs
  on `head_rows` rows: every position for HF, the masked slots for plm.
  Embedding lookups, LayerNorm, softmax and the optimizer are not counted.
  """
  h, f, layers = shape['hidden'], shape['ff'], shape['layers']
  encoder = batch * seq_len * layers * (8 * h * h + 4 * h * f + 4 * seq_len * h)
  head = head_rows * (2 * h * h + 2 * h * vocab)
  return 3.0 * (encoder + head)


def peak_matmul_flops(n: int = 2048, repeats: int = 5, with_torch: bool = True,
                      dtype: str = 'float32') -> float:
  """The best FLOP/s of an n x n x n matmul, from JAX (XLA) and PyTorch: float32, or for
  'bfloat16' bf16 operands (JAX accumulating in float32, its fast form; PyTorch bf16)."""
  a = jnp.asarray(np.random.RandomState(0).standard_normal((n, n)), dtype)
  matmul = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  jax.block_until_ready(matmul(a, a))
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - t0)
  if with_torch:
    import torch  # pylint: disable=g-import-not-at-top
    t = torch.from_numpy(np.array(a, np.float32)).to(getattr(torch, dtype))
    torch.mm(t, t)
    for _ in range(repeats):
      t0 = time.perf_counter()
      torch.mm(t, t)
      best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best
