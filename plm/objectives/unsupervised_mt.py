"""Unsupervised MT (Lample et al. 2018; XLM, Lample & Conneau 2019): two heads per step.

Reads monolingual sentence rows of two languages (plm.data.sentences'
`disjoint_sentence_rows`: disjoint chapters, so no parallel signal), any mix of
the two in one batch; a row's language is its bos's `langs` id. Every row
trains both heads:

  'dae'  denoising auto-encoding: the encoder reads the row's sentence with
         noise (`noise`: a local shuffle that moves no word more than k = 3
         places, then word dropout 0.1; bos and eos kept, at least one word
         kept), the decoder, given the row's own language id, rebuilds the
         original sentence (teacher forcing as plm/objectives/translation.py).
  'bt'   on-the-fly back-translation: inside the step the current model
         greedily translates the row into the other language (`back_translate`:
         cached greedy search of plm.decode.seq2seq over params under
         stop_gradient, in eval mode, pad/bos/mask never generated), and the
         model is trained to translate that generation back into the row.

Both heads predict the original sentence (`w_1 .. w_n [eos]`) and weigh every
real target token 1. The two teacher-forced passes run as one model call on
the stacked [2B] batch. Head weights are objective.loss_weights (default 1).

Rows whose batch holds pairs (src_*/tgt_* keys: the mt job's held-out test
pairs) are scored as supervised translation instead: head 'mt', teacher-forced
source -> target (plm.objectives.translation), the metric the papers report;
'dae' and 'bt' have no predictions there (0 loss, no weight, so no table row).

Example, row `b 7 8 9 e` in language 0 (other language 1):
  dae  src  b 8 7 e     (7, 8 swapped; 9 dropped)   src_langs 0
       tgt  b 7 8 9     targets 7 8 9 e             tgt_langs 0
  bt   src  b 41 17 e   (the model's greedy 0 -> 1 translation)  src_langs 1
       tgt  b 7 8 9     targets 7 8 9 e             tgt_langs 0
"""
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm.decode import search, seq2seq
from plm.errors import UserError
from plm.objectives import base, translation

HEADS = ('dae', 'bt')
WORD_DROPOUT = 0.1  # Lample et al. 2018 p_wd; XLM --word_dropout 0.1
WORD_SHUFFLE = 3  # Lample et al. 2018 k: no word moves more than 3 places


def noise(rng, batch: dict, *, word_dropout: float = WORD_DROPOUT,
          shuffle: float = WORD_SHUFFLE, pad_id: int = 0) -> dict:
  """The noisy sentence rows C(x) of sentence rows `batch` (tokens, segment_ids, positions,
  langs): same keys and shapes, the sentence re-laid out from position 0.

  1. local shuffle (Lample et al. 2018, 2.3): word i gets the key
     q_i = i + U(0, alpha) with alpha = shuffle + 1; sorting the keys moves no
     word more than k = `shuffle` places (0 = none). XLM's `--word_shuffle 3`
     is alpha = 3, i.e. k = 2 here;
  2. word dropout: each word is dropped with probability `word_dropout`; a row
     whose words would all go keeps one (XLM keeps one too).
  bos, eos and padding rows are untouched. Jittable; `rng` gives all the noise.
  """
  if not 0.0 <= word_dropout < 1.0:
    raise UserError(f'word_dropout={word_dropout} must lie in [0, 1)')
  if shuffle < 0:
    raise UserError(f'shuffle={shuffle} must be >= 0 (0 = no shuffle)')
  tokens, valid = batch['tokens'], batch['segment_ids'] > 0
  rows, length = tokens.shape
  index = jnp.broadcast_to(jnp.arange(length)[None, :], tokens.shape)
  count = valid.sum(-1, keepdims=True)  # bos + words + eos
  is_word = (index >= 1) & (index < count - 1)
  k_shuffle, k_drop = jax.random.split(rng)

  # 1. Shuffle: bos first, words by i + U(0, k + 1), then eos and padding in place.
  jitter = jax.random.uniform(k_shuffle, tokens.shape) * (shuffle + 1.0)
  key = jnp.where(is_word, index + jitter, jnp.where(index == 0, -1.0, index + 2.0 * length))
  tokens = jnp.take_along_axis(tokens, jnp.argsort(key, axis=-1), axis=-1)

  # 2. Word dropout (the words still fill slots 1 .. count - 2).
  u = jax.random.uniform(k_drop, tokens.shape)
  keep_word = is_word & (u >= word_dropout)
  lost_all = is_word.any(-1) & ~keep_word.any(-1)
  rescue = jnp.argmax(jnp.where(is_word, u, -1.0), axis=-1)
  keep_word |= lost_all[:, None] & (index == rescue[:, None])
  keep = keep_word | (valid & ((index == 0) | (index == count - 1)))
  # Compact the kept tokens to the front, in order.
  order = jnp.argsort(jnp.where(keep, index, index + length), axis=-1)
  tokens = jnp.take_along_axis(tokens, order, axis=-1)
  new_valid = index < keep.sum(-1, keepdims=True)
  lang = batch['langs'][:, :1]
  return dict(tokens=jnp.where(new_valid, tokens, pad_id).astype(jnp.int32),
              segment_ids=new_valid.astype(jnp.int32),
              positions=jnp.where(new_valid, index, 0).astype(jnp.int32),
              langs=jnp.where(new_valid, lang, 0).astype(jnp.int32))


def pair(src: dict, tgt: dict) -> dict:
  """Pair-row keys (src_*, tgt_*) from two sentence-row dicts."""
  return {**{f'src_{k}': v for k, v in src.items()}, **{f'tgt_{k}': v for k, v in tgt.items()}}


def other_language(langs, lang_ids: Sequence[int]):
  """The other of the two language ids, per entry of `langs`."""
  a, b = lang_ids
  return jnp.where(langs == a, b, a).astype(jnp.int32)


def back_translate(model: nn.Module, params, sentences: dict, to_langs, *, bos_id: int,
                   eos_id: int, pad_id: int, banned_ids: Sequence[int] = ()) -> dict:
  """The model's greedy translations of sentence rows into `to_langs` [B], as sentence rows of
  the same length L (`[bos] y [eos] pad`, langs = to_langs): at most L - 2 words, a
  generation that reaches L - 2 words without eos is ended there.

  `params` are read under stop_gradient: nothing is differentiated through the search.
  `banned_ids` (pad, bos, mask) are never generated. Jittable (lax.while_loop; stops when
  every row has emitted eos).
  """
  params = jax.lax.stop_gradient(params)
  tokens = sentences['tokens']
  rows, length = tokens.shape
  max_len = length - 1  # words + eos after the bos
  step, state = seq2seq.cached_step_fn(model, params, batch_size=rows, src_len=length,
                                       max_len=max_len)
  state = seq2seq.prefill(model, params, state, tokens, sentences['langs'][:, 0], to_langs,
                          pad_id=pad_id)
  banned = np.zeros((model.encoder.vocab_size,), bool)
  banned[list(banned_ids)] = True
  banned = jnp.asarray(banned)

  def allowed_step(cache, last, position):
    logits, cache = step(cache, last, position)
    return jnp.where(banned, search.NEG_INF, logits.astype(jnp.float32)), cache

  out = search.greedy(allowed_step, state, jnp.full((rows,), bos_id, jnp.int32),
                      max_len=max_len, eos_id=eos_id, pad_id=pad_id)
  out = jax.lax.stop_gradient(out)
  # Up to and including the first eos; none by the last slot: eos goes there.
  index = jnp.arange(max_len)[None, :]
  first_eos = jnp.min(jnp.where(out == eos_id, index, max_len - 1), axis=-1, keepdims=True)
  out = jnp.where(index < first_eos, out, jnp.where(index == first_eos, eos_id, pad_id))
  real = jnp.any(sentences['segment_ids'] > 0, axis=-1, keepdims=True)  # padding rows stay 0
  new = jnp.concatenate([jnp.full((rows, 1), bos_id, jnp.int32), out], axis=1)
  valid = (jnp.arange(length)[None, :] <= first_eos + 1) & real
  return dict(tokens=jnp.where(valid, new, pad_id).astype(jnp.int32),
              segment_ids=valid.astype(jnp.int32),
              positions=jnp.where(valid, jnp.arange(length)[None, :], 0).astype(jnp.int32),
              langs=jnp.where(valid, jnp.asarray(to_langs, jnp.int32)[:, None], 0))


SENTENCE_KEYS = ('tokens', 'segment_ids', 'positions', 'langs')


def generate(model_fn: base.ModelFn, bt_targets: dict, *, bos_id: int, eos_id: int,
             pad_id: int, banned_ids: Sequence[int] = ()) -> dict:
  """The sentence rows the 'bt' pass encodes: `back_translate` of the rows in
  `bt_targets` (prepare's targets['bt']) with the model's current params."""
  sentence = {k: bt_targets[k] for k in SENTENCE_KEYS}
  return back_translate(model_fn.model, model_fn.variables['params'], sentence,
                        bt_targets['to_langs'], bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
                        banned_ids=banned_ids)


def head_sums(model_fn: base.ModelFn, inputs: dict, targets: dict, generated: dict,
              prior_logp=None) -> dict:
  """Both heads' sums, the 'bt' pass encoding `generated` (sentence rows, e.g. `generate`'s);
  one model call on the stacked dae and bt inputs."""
  sentence = {k: targets['bt'][k] for k in SENTENCE_KEYS}
  bt_inputs, _, _ = translation.make()(None, pair(generated, sentence))
  both = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), inputs, bt_inputs)
  logits = model_fn(**both)
  rows = inputs['src_tokens'].shape[0]
  out = {}
  for head, part in (('dae', logits[:rows]), ('bt', logits[rows:])):
    t = targets[head]
    out.update(base.prediction_sums(head, part, t['ids'], t['weights'], prior_logp))
  return out


def make(*, lang_ids: Sequence[int], bos_id: int, eos_id: int, pad_id: int,
         banned_ids: Sequence[int] = (), word_dropout: float = WORD_DROPOUT,
         shuffle: float = WORD_SHUFFLE, prior_logp: np.ndarray | None = None,
         mt_prior_logp: np.ndarray | None = None) -> base.Objective:
  """The 'dae' + 'bt' Objective for rows of the languages `lang_ids` (two data.languages
  indices). banned_ids: never generated by back-translation (pad, bos, mask).
  prior_logp: unigram baseline of the sentences (both languages); mt_prior_logp: of the
  target language (the held-out 'mt' head)."""
  lang_ids = tuple(int(i) for i in lang_ids)
  if len(lang_ids) != 2 or lang_ids[0] == lang_ids[1]:
    raise UserError(f'unsupervised MT needs two distinct language ids, got {lang_ids}')
  noise(jax.random.PRNGKey(0), {k: jnp.zeros((1, 3), jnp.int32) for k in SENTENCE_KEYS},
        word_dropout=word_dropout, shuffle=shuffle)  # bad rates fail here, at start
  teacher = translation.make()
  logp = None if prior_logp is None else jnp.asarray(prior_logp)
  mt_logp = None if mt_prior_logp is None else jnp.asarray(mt_prior_logp)

  def prepare(rng, batch, extras):
    del extras
    if 'src_tokens' in batch:  # held-out pairs: supervised translation (head 'mt')
      inputs, ids, weights = teacher(rng, batch)
      none = {h: dict(weights=jnp.zeros_like(weights)) for h in HEADS}
      return inputs, {**none, translation.HEAD: dict(ids=ids, weights=weights)}
    if 'langs' not in batch:
      raise UserError('unsupervised MT needs language ids in the rows: the model must have '
                      'language embeddings (model.num_languages > 0)')
    sentence = {k: batch[k] for k in SENTENCE_KEYS}
    noisy = noise(rng, sentence, word_dropout=word_dropout, shuffle=shuffle, pad_id=pad_id)
    inputs, ids, weights = teacher(None, pair(noisy, sentence))
    to = other_language(sentence['langs'][:, 0], lang_ids)
    return inputs, dict(dae=dict(ids=ids, weights=weights),
                        bt=dict(ids=ids, weights=weights, to_langs=to, **sentence))

  def loss(model_fn: base.ModelFn, inputs, targets, extras):
    del extras
    if translation.HEAD in targets:  # held-out pairs
      t = targets[translation.HEAD]
      out = base.prediction_sums(translation.HEAD, model_fn(**inputs), t['ids'], t['weights'],
                                 mt_logp)
      return {**out, **{f'{h}/loss': jnp.float32(0.0) for h in HEADS}}
    generated = generate(model_fn, targets['bt'], bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
                         banned_ids=banned_ids)
    return head_sums(model_fn, inputs, targets, generated, logp)

  return base.Objective(prepare, loss, HEADS)
