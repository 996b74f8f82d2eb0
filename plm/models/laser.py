"""LASER (Artetxe & Schwenk, 2019): language-agnostic sentence embeddings from a BiLSTM
encoder trained through an LSTM translation decoder.

One encoder for every language (it is never told the source language): BPE token
embeddings -> a stack of bidirectional LSTMs -> max-pooling over time, giving the
sentence vector [B, 2 * hidden]. Padding (token id 0) never enters a recurrence
(steps over padding are masked, so the backward direction starts at the row's last
real token) and never wins the max (padded positions are -inf before it). The decoder
is one LSTM whose input at every step is [previous target token embedding; sentence
vector; target-language embedding], whose initial state (h and c) is tanh of a linear
projection of the sentence vector, and whose states are projected to the vocabulary.
Nothing but the pooled vector reaches the decoder: no attention, no encoder states.

Takes the same inputs as plm/models/seq2seq.py (plm/objectives/translation.py), and
ignores the masks and positions: validity comes from tokens != 0 (pad), and rows
are right-padded as plm.data.sentences lays them out.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from plm.errors import UserError
from plm.nn.dropout import Dropout

PAD = 0  # plm's pad id: a token is real where tokens != PAD
P = nn.with_logical_partitioning
SHAPE_FIELDS = ('layers', 'hidden', 'num_languages')  # what init_from must match
_KERNEL = nn.initializers.lecun_normal()


def _per_gate(init):
  """`init` on each gate's [in, H] block of an [in, 4H] kernel (orthogonal per block)."""
  def gate_init(key, shape, dtype=jnp.float32):
    return jnp.concatenate([init(k, (shape[0], shape[1] // 4), dtype)
                            for k in jax.random.split(key, 4)], axis=-1)
  return gate_init


class LstmWeights(nn.Module):
  """One LSTM direction's weights, gates i, f, g, o side by side on the last axis: input
  kernel [in, 4H], recurrent kernel [H, 4H], bias [4H] (one per gate), logical axes named."""
  features: int

  @nn.compact
  def __call__(self, in_features: int):
    h = self.features
    return (self.param('input_kernel', P(_per_gate(_KERNEL), ('embed', 'mlp')),
                       (in_features, 4 * h)),
            self.param('recurrent_kernel', P(_per_gate(nn.initializers.orthogonal()),
                                             ('embed', 'mlp')), (h, 4 * h)),
            self.param('bias', P(nn.initializers.zeros_init(), ('mlp',)), (4 * h,)))


def lstm_cell(features: int, name: str | None = None) -> LstmWeights:
  """The weights of one LSTM direction (`LstmWeights`); `lstm_scan` runs them."""
  return LstmWeights(features, name=name)


def _gates(z):
  """Pre-activations [B, 4H] -> gates i, f, g, o [B, H]."""
  i, f, g, o = jnp.split(z, 4, axis=-1)
  return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _scan(xs, weights, masks, h0s, c0s, save: bool):
  """All directions in one lax.scan over time; see lstm_scan."""
  def step(carry, inputs):
    new, outs = [], []
    for (h, c), x, m, (w_in, w_rec, bias) in zip(carry, *inputs, weights):
      z = x @ w_in + bias + h @ w_rec
      i, f, g, o = _gates(z)
      c_new = f * c + i * g
      h_new = o * jnp.tanh(c_new)
      if m is not None:  # a padded step holds the carry: padding never enters the recurrence
        c_new, h_new = jnp.where(m, c_new, c), jnp.where(m, h_new, h)
      new.append((h_new, c_new))
      outs.append((h_new, c_new, z) if save else h_new)
    return tuple(new), tuple(outs)
  return jax.lax.scan(step, tuple(zip(h0s, c0s)), (xs, masks))[1]


@jax.custom_vjp
def lstm_scan(xs, weights, masks, h0s, c0s):
  """LSTM states of independent directions run side by side: tuples, one entry per
  direction, of inputs xs [T, B, in] (time-major), weights (input kernel, recurrent kernel,
  bias) from LstmWeights, masks [T, B, 1] bool or None (False: the step is skipped, the
  carry held) and initial h0s, c0s [B, H] -> a tuple of states [T, B, H].

  The backward pass is written out (an LSTM's BPTT): only the recurrence dz_t @ W_rec^T
  runs step by step; the weight and input gradients are whole-sequence matmuls after it,
  not per-step accumulations in the loop.
  """
  return _scan(xs, weights, masks, h0s, c0s, save=False)


def _lstm_scan_fwd(xs, weights, masks, h0s, c0s):
  outs = _scan(xs, weights, masks, h0s, c0s, save=True)
  return tuple(o[0] for o in outs), (xs, weights, masks, h0s, c0s, outs)


def _lstm_scan_bwd(residuals, d_states):
  xs, weights, masks, h0s, c0s, outs = residuals
  c_prev = tuple(jnp.concatenate([c0[None], o[1][:-1]]) for c0, o in zip(c0s, outs))

  def step(carry, inputs):
    new, dzs = [], []
    for (dh, dc), dh_out, m, z, c, cp, (_, w_rec, _) in zip(carry, *inputs, weights):
      dh = dh + dh_out
      i, f, g, o = _gates(z)
      tc = jnp.tanh(c)
      dc_total = dc + dh * o * (1.0 - tc * tc)
      dz = jnp.concatenate([dc_total * g * i * (1.0 - i), dc_total * cp * f * (1.0 - f),
                            dc_total * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
      dh_prev, dc_prev = dz @ w_rec.T, dc_total * f
      if m is not None:  # a held carry passes its gradient back unchanged
        dz = jnp.where(m, dz, 0.0)
        dh_prev, dc_prev = jnp.where(m, dh_prev, dh), jnp.where(m, dc_prev, dc)
      new.append((dh_prev, dc_prev))
      dzs.append(dz)
    return tuple(new), tuple(dzs)

  zeros = tuple((jnp.zeros_like(h0), jnp.zeros_like(h0)) for h0 in h0s)
  inputs = (d_states, masks, tuple(o[2] for o in outs), tuple(o[1] for o in outs), c_prev)
  d_initial, dzs = jax.lax.scan(step, zeros, inputs, reverse=True)
  d_xs, d_weights = [], []
  for x, h0, o, dz, (w_in, _, _) in zip(xs, h0s, outs, dzs, weights):
    t, b, h = o[0].shape
    dz = dz.reshape(t * b, 4 * h)  # 2-D matmuls: XLA:CPU runs them as single GEMMs
    h_prev = o[0][:-1].reshape((t - 1) * b, h)
    d_rec = h_prev.T @ dz[b:] + h0.T @ dz[:b]
    d_weights.append((x.reshape(t * b, -1).T @ dz, d_rec, jnp.sum(dz, axis=0)))
    d_xs.append((dz @ w_in.T).reshape(x.shape))
  return (tuple(d_xs), tuple(d_weights), tuple(None for _ in masks),
          tuple(d[0] for d in d_initial), tuple(d[1] for d in d_initial))


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


def lengths_of(tokens):
  """Real tokens per row [B] (rows are right-padded)."""
  return jnp.sum(tokens != PAD, axis=-1).astype(jnp.int32)


class BiLstmEncoder(nn.Module):
  """Token embeddings + `layers` bidirectional LSTMs: states [B, L, 2 * hidden]."""
  vocab_size: int
  embed_dim: int
  layers: int
  hidden: int
  dropout: float = 0.0

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, self.embed_dim, name='embed',
                          embedding_init=P(nn.initializers.normal(0.1), ('vocab', 'embed')))
    self.bilstms = [(lstm_cell(self.hidden, f'bilstm_{i}_forward'),
                     lstm_cell(self.hidden, f'bilstm_{i}_backward')) for i in range(self.layers)]
    self.drop = Dropout(self.dropout)

  def __call__(self, tokens, deterministic: bool = True):
    """[forward; backward] states [B, L, 2H]; 0 at padded positions.

    Both directions run in one time-major scan. The backward one reads the row reversed
    whole, so it meets a row's padding first: those steps are masked (the carry stays 0)
    and it starts at the row's last real token.
    """
    valid = (tokens != PAD).T[..., None]  # [L, B, 1]
    x = jnp.swapaxes(self.drop(self.embed(tokens), deterministic=deterministic), 0, 1)
    zeros = jnp.zeros((tokens.shape[0], self.hidden), x.dtype)
    for i, weights in enumerate(self.bilstms):
      if i:
        x = self.drop(x, deterministic=deterministic)
      forward, backward = lstm_scan((x, x[::-1]), tuple(w(x.shape[-1]) for w in weights),
                                    (valid, valid[::-1]), (zeros, zeros), (zeros, zeros))
      x = jnp.concatenate([forward, backward[::-1]], axis=-1)
      x = nn.with_logical_constraint(x, ('length', 'batch', 'mlp'))
    return jnp.where(valid, x, 0.0).swapaxes(0, 1)


class LstmDecoder(nn.Module):
  """One LSTM fed [previous token; sentence vector; target language]: states [B, Lt, D]."""
  vocab_size: int
  embed_dim: int
  hidden: int
  num_languages: int = 0
  lang_dim: int = 0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, sentence, tokens, langs, token_embed, deterministic: bool = True):
    b, length = tokens.shape
    parts = [token_embed(tokens),
             jnp.broadcast_to(sentence[:, None, :], (b, length, sentence.shape[-1]))]
    if self.num_languages:
      if langs is None:
        raise UserError(f'model.num_languages={self.num_languages}: the decoder writes the '
                        'language tgt_langs names; pass tgt_langs (or set model.num_languages=0)')
      table = nn.Embed(self.num_languages, self.lang_dim, name='language',
                       embedding_init=P(nn.initializers.normal(0.1), ('types', 'embed')))
      parts.append(table(langs))
    drop = Dropout(self.dropout)
    x = drop(jnp.concatenate(parts, axis=-1), deterministic=deterministic)
    init = nn.Dense(2 * self.hidden, name='init', kernel_init=P(_KERNEL, ('embed', 'mlp')),
                    bias_init=P(nn.initializers.zeros_init(), ('mlp',)))(sentence)
    h0, c0 = jnp.split(jnp.tanh(init), 2, axis=-1)
    weights = lstm_cell(self.hidden, name='lstm')(x.shape[-1])
    (out,) = lstm_scan((jnp.swapaxes(x, 0, 1),), (weights,), (None,), (h0,), (c0,))
    return drop(jnp.swapaxes(out, 0, 1), deterministic=deterministic)


class Laser(nn.Module):
  """BiLSTM + max-pool sentence encoder with an LSTM decoder: logits [B, Lt, V] (float32)."""
  vocab_size: int
  embed_dim: int
  layers: int
  encoder_hidden: int  # model.hidden (a field named `hidden` would hide the method)
  decoder_hidden: int
  num_languages: int = 0
  lang_dim: int = 0
  dropout: float = 0.0
  share_embeddings: bool = True

  def setup(self):
    self.encoder = BiLstmEncoder(self.vocab_size, self.embed_dim, self.layers,
                                 self.encoder_hidden, self.dropout)
    if not self.share_embeddings:
      self.target_embed = nn.Embed(self.vocab_size, self.embed_dim, name='target_embed',
                                   embedding_init=P(nn.initializers.normal(0.1),
                                                    ('vocab', 'embed')))
    self.decoder = LstmDecoder(self.vocab_size, self.embed_dim, self.decoder_hidden,
                               self.num_languages, self.lang_dim, self.dropout)
    self.output = nn.Dense(self.vocab_size, name='output',
                           kernel_init=P(_KERNEL, ('embed', 'vocab')),
                           bias_init=P(nn.initializers.zeros_init(), ('vocab',)))

  def __call__(self, src_tokens, src_positions=None, src_mask=None, tgt_tokens=None,
               tgt_positions=None, tgt_mask=None, cross_mask=None, src_langs=None,
               tgt_langs=None, deterministic: bool = True):
    """Teacher-forced logits [B, Lt, V]; the masks and positions are not needed."""
    del src_positions, src_mask, tgt_positions, tgt_mask, cross_mask
    return self.logits(self.hidden_states(src_tokens, tgt_tokens, src_langs, tgt_langs,
                                          deterministic))

  def hidden_states(self, src_tokens, tgt_tokens, src_langs=None, tgt_langs=None,
                    deterministic: bool = True):
    sentence = self.embed(src_tokens, src_langs, deterministic)
    return self.decode(sentence, tgt_tokens, tgt_langs, deterministic)

  def hidden(self, src_tokens, src_positions=None, src_mask=None, tgt_tokens=None,
             tgt_positions=None, tgt_mask=None, cross_mask=None, src_langs=None,
             tgt_langs=None, deterministic: bool = True):
    """The decoder's states [B, Lt, decoder_hidden] (for train.loss_chunk)."""
    del src_positions, src_mask, tgt_positions, tgt_mask, cross_mask
    return self.hidden_states(src_tokens, tgt_tokens, src_langs, tgt_langs, deterministic)

  def encode(self, src_tokens, deterministic: bool = True):
    """The BiLSTM's states [B, Ls, 2 * hidden] ([forward; backward]; 0 on padding)."""
    return self.encoder(src_tokens, deterministic)

  def embed(self, src_tokens, src_langs=None, deterministic: bool = True):
    """Sentence vectors [B, 2 * hidden]: the max over real tokens of the BiLSTM states.
    `src_langs` is ignored: the encoder is language-agnostic. A row without tokens is 0."""
    del src_langs
    states = self.encode(src_tokens, deterministic)
    valid = (src_tokens != PAD)[..., None]
    pooled = jnp.max(jnp.where(valid, states, -jnp.inf), axis=1)
    return jnp.where(jnp.any(valid, axis=1), pooled, 0.0)

  def sentence_vectors(self, tokens, langs=None, *, layer: int = -1, pooling: str = 'max',
                       pad_id: int = PAD):
    """The sentence vectors [B, 2 * hidden] (`embed`): LASER's are always the max-pool of
    the last BiLSTM layer, so other `layer`/`pooling` settings are an error, not ignored."""
    if (layer, pooling) not in ((-1, 'max'), (self.layers, 'max')) or pad_id != PAD:
      raise UserError(f'embed.layer={layer}, embed.pooling={pooling!r}: a LASER model\'s '
                      "sentence vector is the max-pool of its last BiLSTM layer; set "
                      "embed.pooling='max' and embed.layer=-1 (configs/laser.py does)")
    return self.embed(tokens, langs).astype(jnp.float32)

  def decode(self, sentence, tgt_tokens, tgt_langs=None, deterministic: bool = True):
    """Decoder states [B, Lt, decoder_hidden] from sentence vectors [B, 2H] only."""
    embed = self.encoder.embed if self.share_embeddings else self.target_embed
    return self.decoder(sentence, tgt_tokens, tgt_langs, embed, deterministic)

  def logits(self, x):
    """Vocabulary logits (float32) of decoder states [..., decoder_hidden]."""
    # As 2-D rows: XLA:CPU transposes a 3-D Dense's whole logits gradient for the weight
    # gradient (~2x the head's cost; experiments/benchmarks/laser_throughput.py).
    return self.output(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1).astype(jnp.float32)


def config() -> ml_collections.ConfigDict:
  """LASER's fields (model.*), CPU-sized. The paper's: embed_dim=320, layers=5, hidden=512
  (1024-d sentence vectors), decoder_hidden=2048, lang_dim=32, 93 languages, 50k BPE."""
  c = ml_collections.ConfigDict()
  c.name = 'laser'  # plm.models.NAMES
  c.embed_dim = 64  # BPE token embedding size (encoder and decoder inputs; paper 320)
  c.layers = 2  # stacked bidirectional LSTM layers of the encoder (paper 5)
  c.hidden = 64  # LSTM units per direction; sentence vectors are 2 * hidden (paper 512)
  c.decoder_hidden = 128  # units of the decoder's single LSTM layer (paper 2048)
  c.num_languages = 0  # target-language embeddings; 0 = none, -1 = one per data.languages
  c.lang_dim = 16  # target-language embedding size fed to the decoder (paper 32)
  c.dropout = 0.1  # on embeddings, between BiLSTM layers, on decoder inputs and states
  c.share_embeddings = True  # the decoder reads the encoder's token table (one BPE vocabulary)
  return c


def build(mc, vocab_size: int) -> Laser:
  for field in ('embed_dim', 'layers', 'hidden', 'decoder_hidden'):
    if mc[field] < 1:
      raise UserError(f'model.{field}={mc[field]} must be at least 1')
  if mc.num_languages < 0:
    raise UserError(f'model.num_languages={mc.num_languages} was not resolved; plm.run.resolve '
                    'sets -1 to the number of data.languages')
  if mc.num_languages and mc.lang_dim < 1:
    raise UserError(f'model.lang_dim={mc.lang_dim} with model.num_languages='
                    f'{mc.num_languages}: language embeddings need a size of at least 1')
  if not 0.0 <= mc.dropout < 1.0:
    raise UserError(f'model.dropout={mc.dropout} must be in [0, 1)')
  return Laser(vocab_size, mc.embed_dim, mc.layers, mc.hidden, mc.decoder_hidden,
               mc.num_languages, mc.lang_dim, mc.dropout, mc.share_embeddings)
