"""LASER (Artetxe & Schwenk, 2019): language-agnostic sentence embeddings from a BiLSTM
encoder trained through an LSTM translation decoder.

One encoder for every language (it is never told the source language): BPE token
embeddings -> a stack of bidirectional LSTMs -> max-pooling over time, giving the
sentence vector [B, 2 * hidden]. Padding (token id 0) never enters a recurrence
(each direction runs over the row's real tokens only, via seq_lengths) and never
wins the max (padded positions are -inf before it). The decoder is one LSTM whose
input at every step is [previous target token embedding; sentence vector;
target-language embedding], whose initial state (h and c) is tanh of a linear projection
of the sentence vector, and whose states are projected to the vocabulary.
Nothing but the pooled vector reaches the decoder: no attention, no encoder states.

Takes the same inputs as plm/models/seq2seq.py (plm/objectives/translation.py), and
ignores the masks and positions: validity comes from tokens != 0 (pad), and rows
are right-padded as plm.data.sentences lays them out.
"""
import flax.linen as nn
import jax.numpy as jnp
import ml_collections

PAD = 0  # plm's pad id: a token is real where tokens != PAD
P = nn.with_logical_partitioning
_KERNEL = nn.initializers.lecun_normal()


def lstm_cell(features: int, name: str | None = None) -> nn.OptimizedLSTMCell:
  """An LSTM cell whose kernels [in, features] and biases carry logical axis names."""
  return nn.OptimizedLSTMCell(
      features, kernel_init=P(_KERNEL, ('embed', 'mlp')),
      recurrent_kernel_init=P(nn.initializers.orthogonal(), ('embed', 'mlp')),
      bias_init=P(nn.initializers.zeros_init(), ('mlp',)), name=name)


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
    self.bilstms = [nn.Bidirectional(nn.RNN(lstm_cell(self.hidden)),
                                     nn.RNN(lstm_cell(self.hidden)), name=f'bilstm_{i}')
                    for i in range(self.layers)]
    self.drop = nn.Dropout(self.dropout)

  def __call__(self, tokens, deterministic: bool = True):
    """[forward; backward] states [B, L, 2H]; 0 at padded positions."""
    valid = tokens != PAD
    lengths = lengths_of(tokens)
    x = self.drop(self.embed(tokens), deterministic=deterministic)
    for i, bilstm in enumerate(self.bilstms):
      if i:
        x = self.drop(x, deterministic=deterministic)
      x = bilstm(x, seq_lengths=lengths)
      x = nn.with_logical_constraint(x, ('batch', 'length', 'mlp'))
    return jnp.where(valid[..., None], x, 0.0)


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
        raise ValueError(f'model.num_languages={self.num_languages}: the decoder writes the '
                         'language tgt_langs names; pass tgt_langs (or set model.num_languages=0)')
      table = nn.Embed(self.num_languages, self.lang_dim, name='language',
                       embedding_init=P(nn.initializers.normal(0.1), ('types', 'embed')))
      parts.append(table(langs))
    drop = nn.Dropout(self.dropout)
    x = drop(jnp.concatenate(parts, axis=-1), deterministic=deterministic)
    init = nn.Dense(2 * self.hidden, name='init', kernel_init=P(_KERNEL, ('embed', 'mlp')),
                    bias_init=P(nn.initializers.zeros_init(), ('mlp',)))(sentence)
    h0, c0 = jnp.split(jnp.tanh(init), 2, axis=-1)
    out = nn.RNN(lstm_cell(self.hidden, name='lstm'))(x, initial_carry=(c0, h0))
    return drop(out, deterministic=deterministic)


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
      raise ValueError(f'embed.layer={layer}, embed.pooling={pooling!r}: a LASER model\'s '
                       "sentence vector is the max-pool of its last BiLSTM layer; set "
                       "embed.pooling='max' and embed.layer=-1 (configs/laser.py does)")
    return self.embed(tokens, langs).astype(jnp.float32)

  def decode(self, sentence, tgt_tokens, tgt_langs=None, deterministic: bool = True):
    """Decoder states [B, Lt, decoder_hidden] from sentence vectors [B, 2H] only."""
    embed = self.encoder.embed if self.share_embeddings else self.target_embed
    return self.decoder(sentence, tgt_tokens, tgt_langs, embed, deterministic)

  def logits(self, x):
    """Vocabulary logits (float32) of decoder states [..., decoder_hidden]."""
    return self.output(x).astype(jnp.float32)


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
      raise ValueError(f'model.{field}={mc[field]} must be at least 1')
  if mc.num_languages < 0:
    raise ValueError(f'model.num_languages={mc.num_languages} was not resolved; plm.run.resolve '
                     'sets -1 to the number of data.languages')
  if mc.num_languages and mc.lang_dim < 1:
    raise ValueError(f'model.lang_dim={mc.lang_dim} with model.num_languages='
                     f'{mc.num_languages}: language embeddings need a size of at least 1')
  if not 0.0 <= mc.dropout < 1.0:
    raise ValueError(f'model.dropout={mc.dropout} must be in [0, 1)')
  return Laser(vocab_size, mc.embed_dim, mc.layers, mc.hidden, mc.decoder_hidden,
               mc.num_languages, mc.lang_dim, mc.dropout, mc.share_embeddings)
