"""Whole architectures, picked by `config.model.name`."""
import flax.linen as nn
import jax.numpy as jnp

from plm.models import sizes
from plm.models.encoder import Encoder, EncoderLM
from plm.nn.attention import IMPLEMENTATIONS

NAMES = ('encoder_lm',)
_ENCODER_FIELDS = ('activation', 'dropout', 'attention_dropout', 'max_len', 'num_segments',
                   'num_languages', 'num_tasks', 'positions', 'post_ln', 'ln_eps', 'remat',
                   'attention')
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # model.dtype: compute dtype
# How a model computes, not what it is: a checkpoint serves every setting of these.
COMPUTE_FIELDS = ('dtype', 'remat', 'attention')


def build(model_config, vocab_size: int) -> nn.Module:
  """The model named by `model.name`, sized by `model.size` (fields override)."""
  shape = sizes.get(model_config.size)
  for key in shape:
    if model_config.get(key) is not None:
      shape[key] = model_config[key]
  if shape['hidden'] % shape['heads']:
    raise ValueError(f"model.hidden={shape['hidden']} is not divisible by "
                     f"model.heads={shape['heads']}")
  kwargs = {k: model_config[k] for k in _ENCODER_FIELDS if k in model_config}
  dtype = model_config.get('dtype', 'float32')
  if dtype not in DTYPES:
    raise ValueError(f'model.dtype={dtype!r} is unknown; use one of {list(DTYPES)} (parameters '
                     'and optimizer state stay float32 either way)')
  kwargs['dtype'] = DTYPES[dtype]
  if kwargs.get('attention', 'einsum') not in IMPLEMENTATIONS:
    raise ValueError(f"model.attention={kwargs['attention']!r} is unknown; use one of "
                     f'{IMPLEMENTATIONS}')
  encoder = Encoder(vocab_size=vocab_size, **shape, **kwargs)
  if model_config.name == 'encoder_lm':
    return EncoderLM(encoder)
  raise ValueError(f'model.name={model_config.name!r} is unknown; use one of {NAMES}')
