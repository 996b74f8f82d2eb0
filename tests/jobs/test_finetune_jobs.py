"""The classify and generate jobs end to end: pre-train configs/unilm.py:tiny, fine-tune, test."""
import collections
import json
import os

import numpy as np
import pytest
import sacrebleu

from configs import unilm
import plm
from plm import run
from plm import workdir as workdir_lib
from plm.data import bible, bible_tasks, labelled
from plm.decode import unilm as unilm_decode
from plm.evaluate import generation
from plm.jobs import classify, generate, pretrain
from plm.models.classifier import EncoderClassifier

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def unilm_config(tfds_dir, tmp_path_factory):
  bible.load_documents('en_web', 'test', tfds_dir)  # the generate task's target
  config = unilm.get_config('tiny')
  config.data.tfds_dir = tfds_dir
  config.data.vocab_path = str(tmp_path_factory.mktemp('unilm_vocab') / 'spm.model')
  return config


@pytest.fixture(scope='module')
def pretrained(unilm_config, tmp_path_factory):
  """checkpoints/ of a short UNILM pre-training run (its vocabulary is unilm_config's).

  At a low rate: a few steps at :tiny's 5e-3 leave the encoder in the unigram stage
  (every position's state nearly the same), from which 150 fine-tuning steps cannot
  recover; the experiment in experiments/unilm/ pre-trains for real.
  """
  config = unilm_config.copy_and_resolve_references()
  config.train.steps, config.train.batch_size, config.train.eval_every = 30, 16, 1000
  config.optim.lr = 5e-4
  workdir = tmp_path_factory.mktemp('unilm_pre')
  pretrain.train_job(config, str(workdir))
  return str(workdir / 'checkpoints')


def _finetune_config(base, job, init_from, steps):
  config = base.copy_and_resolve_references()
  config.job, config.init_from, config.finetune.steps = job, init_from, steps
  return config


def _genre_rows(tokenizer, translation, split, seq_len, data_dir):
  """The reference for labelled.genre_set: `[bos] verse [eos] pad...` of every verse that
  fits seq_len, with its book's genre; and how many verses were left out."""
  texts, labels = bible_tasks.genre_examples(translation, split, data_dir)
  rows = [[tokenizer.bos_id] + ids + [tokenizer.eos_id] for ids in tokenizer.encode(texts)]
  keep = [i for i, r in enumerate(rows) if len(r) <= seq_len]
  tokens = np.full((len(keep), seq_len), tokenizer.pad_id, np.int32)
  for out, i in enumerate(keep):
    tokens[out, :len(rows[i])] = rows[i]
  return tokens, np.asarray(labels)[keep], len(rows) - len(keep)


def test_classify_beats_majority_class(unilm_config, pretrained, tmp_path):
  config = _finetune_config(unilm_config, 'classify', pretrained, 150)
  results = classify.classify_job(config, str(tmp_path))
  assert results['job'] == 'classify' and results['task'] == 'classify'
  assert results['step'] == 150 and results['init_from'] == pretrained
  en = results['test']['en']['classify']
  share = results['majority_share']['en']
  # Held-out verses (chapters never trained on): every KJV test verse that fits, and the
  # share of its commonest genre, computed here from the Bible itself.
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  _, labels, _ = _genre_rows(tokenizer, 'en_kjv', 'test', config.finetune.seq_len,
                             unilm_config.data.tfds_dir)
  assert en['predictions'] == len(labels) > 1000
  assert share == pytest.approx(np.bincount(labels).max() / len(labels))
  # The head's unigram baseline answers the training split's commonest genre: it cannot
  # beat the test split's own.
  assert en['unigram_accuracy'] <= share + 1e-9
  assert en['accuracy'] > share + 0.05, (en, share)
  with open(tmp_path / 'results.json', encoding='utf-8') as f:
    assert json.load(f) == json.loads(json.dumps(results))
  # The loaded run labels the same test verses as the job scored them: the same accuracy.
  loaded = plm.load(str(tmp_path))
  assert loaded.methods() == ('embed', 'classify')
  texts, genres = bible_tasks.genre_examples('en_kjv', 'test', unilm_config.data.tfds_dir)
  fits = [len(ids) + 2 <= config.finetune.seq_len for ids in tokenizer.encode(texts)]
  texts = [t for t, keep in zip(texts, fits) if keep]
  gold = [bible_tasks.GENRES[g] for g, keep in zip(genres, fits) if keep]
  predicted = loaded.classify(texts)
  assert np.mean([p == g for p, g in zip(predicted, gold)]) == pytest.approx(en['accuracy'])
  with pytest.raises(plm.UserError, match=r'line 1 has 2 tab-separated texts'):
    loaded.classify(['a\tb'])
  pre = plm.load(os.path.dirname(pretrained))  # the UNILM pre-training run
  assert pre.config.model.name == 'encoder_lm' and pre.methods() == ('embed',)
  with pytest.raises(plm.UserError, match=r"job='train' run .* no .classify\(\)"):
    pre.classify(texts[:1])


def test_generate_learns_and_decodes(unilm_config, pretrained, tmp_path):
  config = _finetune_config(unilm_config, 'generate', pretrained, 100)
  # 5 examples in one batch of 8: the batch is filled up, and every example is a sample.
  config.decode.max_test_examples, config.decode.batch_size = 5, 8
  results = generate.generate_job(config, str(tmp_path))
  test = results['test']['en_kjv->en_web']['seq2seq']
  # Held-out masked-target accuracy above predicting the commonest target token (0.045;
  # measured 0.075 over ~3,000 predictions after 100 steps).
  assert test['predictions'] > 1000
  assert test['accuracy'] > 1.3 * test['unigram_accuracy'], test
  decoded = results['decode']
  assert decoded['examples'] == len(decoded['samples']) == 5
  # The samples are the first test pairs, in order, each with a non-empty hypothesis.
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  _, pairs = labelled.pair_set(tokenizer, 'test', config.finetune, unilm_config.data.tfds_dir)
  refs = [ref for _, ref in pairs[:5]]
  sources = [tokenizer.decode(src) for src, _ in pairs[:5]]
  hyps = [s['hypothesis'] for s in decoded['samples']]
  assert [s['reference'] for s in decoded['samples']] == refs
  assert [s['source'] for s in decoded['samples']] == sources
  assert all(hyps)
  # BLEU is corpus BLEU of exactly these hypotheses (the filler rows left out).
  assert decoded['bleu'] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
  assert decoded['copy_bleu'] == pytest.approx(sacrebleu.corpus_bleu(sources, [refs]).score)
  assert 5 < decoded['copy_bleu'] < 100  # KJV and WEB share words, never whole verses
  # The word-by-word baseline translates these sources with the training pairs' dictionary.
  dictionary = generate.word_dictionary('en_kjv', 'en_web', unilm_config.data.tfds_dir)
  assert dictionary['thee'] == 'you'  # what KJV -> WEB modernisation mostly is
  words = generation.translate_words(sources, dictionary)
  assert decoded['dictionary_bleu'] == pytest.approx(sacrebleu.corpus_bleu(words, [refs]).score)
  assert decoded['dictionary_chrf'] == pytest.approx(sacrebleu.corpus_chrf(words, [refs]).score)
  assert decoded['chrf'] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
  assert decoded['signature']['bleu'].startswith('nrefs:1|')
  with open(decoded['hypotheses'], encoding='utf-8') as f:
    assert f.read().splitlines() == hyps

  # The same run decodes a user's file: one output a line, in order, empty lines kept.
  source_file, out_file = tmp_path / 'in.txt', tmp_path / 'out.txt'
  source_file.write_text(f'{sources[0]}\n\n{sources[1]}\n{sources[0]}\n', encoding='utf-8')
  config.decode.input, config.decode.output = str(source_file), str(out_file)
  out = generate.generate_job(config, str(tmp_path))
  assert out_file.read_text(encoding='utf-8').split('\n') == out + ['']
  # (not equal to `hyps`: a batch's widest source sets how long its outputs may grow)
  assert len(out) == 4 and out[1] == '' and out[0] == out[3] and out[0] and out[2]
  # The documented command: only --workdir and the files. The run's config.json names its
  # vocabulary (data.vocab_path, outside the run), so the file decodes the same.
  bare = unilm.get_config('tiny')
  bare.job, bare.decode.batch_size = 'generate', 8
  bare.decode.input, bare.decode.output = str(source_file), str(tmp_path / 'bare.txt')
  assert generate.generate_job(bare, str(tmp_path)) == out
  loaded = plm.load(str(tmp_path))  # the run called from Python: the same outputs
  assert loaded.methods() == ('embed', 'generate')
  assert loaded.generate(source_file.read_text(encoding='utf-8').splitlines()) == out
  source_file.write_text('word ' * 200, encoding='utf-8')
  with pytest.raises(ValueError, match=r'in.txt, line 1: .* tokens with bos/eos, which leave no room'):
    generate.generate_job(config, str(tmp_path))


def test_generate_with_pseudo_masking_learns_and_scores_the_same_test_pairs(
    unilm_config, pretrained, tmp_path):
  """finetune.target_masking='pseudo': rows carry the target's [MASK] twins, every target
  token is predicted, and the decoded test pairs are those of the random scheme."""
  config = _finetune_config(unilm_config, 'generate', pretrained, 100)
  config.finetune.target_masking = 'pseudo'
  config.decode.max_test_examples, config.decode.batch_size = 5, 8
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  rows, pairs = labelled.pair_set(tokenizer, 'test', config.finetune, unilm_config.data.tfds_dir)
  plain = config.copy_and_resolve_references()
  plain.finetune.target_masking = 'random'
  plain_rows, plain_pairs = labelled.pair_set(tokenizer, 'test', plain.finetune,
                                              unilm_config.data.tfds_dir)
  assert pairs == plain_pairs
  a = rows.arrays
  twins, real = a['pseudo'] == 1, (a['token_types'] == 1) & (a['pseudo'] == 0) & (a['valid'] == 1)
  assert twins.sum() == real.sum() and len(a['tokens']) < len(plain_rows.arrays['tokens'])
  results = generate.generate_job(config, str(tmp_path))
  test = results['test']['en_kjv->en_web']['seq2seq']
  # Every target token of every held-out row is predicted (the random scheme: 70%).
  assert test['predictions'] == twins.sum()
  assert test['accuracy'] > 1.3 * test['unigram_accuracy'], test
  assert results['decode']['examples'] == 5 and all(
      s['hypothesis'] for s in results['decode']['samples'])


def test_decode_test_scores_each_hypothesis_against_its_own_reference(unilm_config,
                                                                      monkeypatch):
  """decode_test with a stand-in decoder that answers each prompt with a reference: its own
  gives the best BLEU the vocabulary allows (100 but for unknown characters), the next
  pair's (right text, wrong verse) far less than even copying the source. 40 examples in
  batches of 16 cover several batches and a filled-up last one; tokens after the eos
  are junk that must be cut."""
  config = unilm_config.copy_and_resolve_references()
  fc = config.finetune
  config.decode.max_test_examples, config.decode.batch_size = 40, 16
  tokenizer = workdir_lib.load_tokenizer(config, '')
  _, pairs = labelled.pair_set(tokenizer, 'test', fc, config.data.tfds_dir)
  pairs = pairs[:40]
  refs = [ref for _, ref in pairs]
  targets = tokenizer.encode(refs)
  # The best a decoder can write: each reference through the vocabulary (KJV's: WEB's
  # curly double quotes come back as unknown pieces), exact for most verses.
  best = [tokenizer.decode(t) for t in targets]
  assert sum(b == r for b, r in zip(best, refs)) >= 30

  def oracle(shift):
    """The stand-in reads each prompt's source; a source that occurs twice among the pairs
    (a repeated verse) answers its pairs in turn; a filler row gets junk."""
    pending = collections.defaultdict(list)
    for i, (src, _) in enumerate(pairs):
      pending[tuple(src)].append(i)

    def make_decoder(model, *, eos_id, pad_id, batch_size, prompt_width, **kwargs):
      del model, kwargs
      def decoder(params, prompt, valid):
        del params
        assert prompt.shape == (batch_size, prompt_width)
        out = np.full((batch_size, 200), pad_id, np.int32)
        for row, (p, v) in enumerate(zip(prompt, valid)):
          queue = pending[tuple(p[v][1:-1])]
          ids = targets[(queue.pop(0) + shift) % 40] if queue else [p[v][1]] * 5
          ids = list(ids) + [eos_id] + [p[v][1]] * 3  # junk after the eos
          out[row, :len(ids)] = ids
        return out
      return decoder
    return make_decoder

  results = {}
  for shift in (0, 1):
    monkeypatch.setattr(unilm_decode, 'make_decoder', oracle(shift))
    results[shift] = generate.decode_test(config, None, tokenizer, None)
  exact, wrong = results[0], results[1]
  assert exact['examples'] == wrong['examples'] == 40
  assert sacrebleu.corpus_bleu(refs, [refs]).score == pytest.approx(100.0)
  ceiling = sacrebleu.corpus_bleu(best, [refs]).score
  assert exact['bleu'] == pytest.approx(ceiling) and ceiling > 90
  assert [s['hypothesis'] for s in exact['samples']] == best[:5]
  assert [s['reference'] for s in exact['samples']] == refs[:5]
  assert exact['copy_bleu'] == wrong['copy_bleu'] < 100
  assert wrong['bleu'] < 0.5 * exact['copy_bleu'], (wrong['bleu'], exact['copy_bleu'])


def test_pair_longer_than_budget_is_an_error(unilm_config):
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  fc = unilm_config.finetune.copy_and_resolve_references()
  fc.seq_len, fc.skip_long = 40, False
  with pytest.raises(ValueError, match=r'pairs need more than finetune.seq_len=40.*skip_long=True'):
    labelled.pair_set(tokenizer, 'test', fc, unilm_config.data.tfds_dir)
  fc.skip_long = True
  kept, pairs = labelled.pair_set(tokenizer, 'test', fc, unilm_config.data.tfds_dir)
  assert kept.info['skipped'] > 0 and len(kept) == len(pairs) > 0
  assert kept.arrays['valid'].sum(1).max() <= 40
  # Every kept pair is its layout: [bos] source [eos] target [eos], nothing cut.
  for row, (src, ref) in list(zip(kept.arrays['tokens'], pairs))[:50]:
    tgt = tokenizer.encode([ref])[0]
    want = [tokenizer.bos_id, *src, tokenizer.eos_id, *tgt, tokenizer.eos_id]
    np.testing.assert_array_equal(row[:len(want)], want)
    assert (row[len(want):] == tokenizer.pad_id).all()


def test_same_translation_twice_is_the_copy_task(unilm_config):
  """finetune.source = finetune.target: each row's target is its own source (decoding check)."""
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  fc = unilm_config.finetune.copy_and_resolve_references()
  fc.target = fc.source = 'en_kjv'
  kept, pairs = labelled.pair_set(tokenizer, 'test', fc, unilm_config.data.tfds_dir)
  assert len(pairs) > 100
  for row, types, (src, ref) in list(zip(kept.arrays['tokens'], kept.arrays['token_types'],
                                          pairs))[:50]:
    assert list(tokenizer.encode([ref])[0]) == list(src)
    target = row[types == 1]  # the target and its eos
    np.testing.assert_array_equal(target, [*src, tokenizer.eos_id])


def test_unknown_translation_and_language_are_errors(unilm_config):
  tokenizer = workdir_lib.load_tokenizer(unilm_config, '')
  fc = unilm_config.finetune.copy_and_resolve_references()
  fc.target = 'en_bbe'
  with pytest.raises(ValueError, match="finetune.target='en_bbe' is not a shipped translation"):
    labelled.pair_set(tokenizer, 'test', fc, unilm_config.data.tfds_dir)
  with pytest.raises(ValueError, match="language 'fr' has no Bible translation"):
    labelled.genre_set(tokenizer, 'fr', 0, 'test', fc, unilm_config.data.tfds_dir)


def test_xlm_classify_tests_each_language_with_its_id(tiny_config):
  """The zero-shot setting: en training rows, en and es test rows with their language ids."""
  config = run.resolve(tiny_config.copy_and_resolve_references())
  tokenizer = workdir_lib.load_tokenizer(config, '')
  task = classify.make_task(config, tokenizer)
  assert task.name == 'classify' and task.objective.heads == ('classify',)
  assert isinstance(task.model, EncoderClassifier)
  assert task.model_config.num_classes == len(bible_tasks.GENRES)
  assert task.model_config.num_languages == task.model.encoder.num_languages == 2
  assert (task.train_rows.arrays['langs'] == 0).all()
  test = task.heldout('test')
  assert sorted(test) == ['en', 'es']
  for lang, lang_id, translation in (('en', 0, 'en_kjv'), ('es', 1, 'es_rv1909')):
    rows = test[lang]
    assert (rows.arrays['langs'] == lang_id).all()
    # Each test verse that fits, as [bos] verse [eos], labelled with its book's genre.
    tokens, labels, skipped = _genre_rows(tokenizer, translation, 'test',
                                          config.finetune.seq_len, config.data.tfds_dir)
    np.testing.assert_array_equal(rows.arrays['tokens'], tokens)
    np.testing.assert_array_equal(rows.arrays['labels'], labels)
    np.testing.assert_array_equal(rows.arrays['segment_ids'], tokens != tokenizer.pad_id)
    assert rows.info['skipped'] == skipped > 0
    assert set(labels) == set(range(len(bible_tasks.GENRES)))  # every genre is tested
  config.finetune.test_languages = ('en', 'de')
  with pytest.raises(ValueError, match="'de' is not in data.languages"):
    classify.make_task(config, tokenizer).heldout('test')
  with pytest.raises(ValueError, match='generate needs model.num_segments >= 2'):
    generate.make_task(config, tokenizer)


def test_bad_budget_and_vocabulary_are_errors(unilm_config, pretrained, tmp_path):
  for job, fn in (('classify', classify.classify_job), ('generate', generate.generate_job)):
    config = _finetune_config(unilm_config, job, pretrained, 1)
    config.finetune.seq_len = config.model.max_len + 1
    with pytest.raises(ValueError, match='finetune.seq_len=65 exceeds model.max_len=64'):
      fn(config, str(tmp_path / job))
  config = _finetune_config(unilm_config, 'classify', pretrained, 1)
  config.data.vocab_path, config.data.vocab_size = str(tmp_path / 'other' / 'spm.model'), 900
  with pytest.raises(ValueError, match='set data.vocab_path to the vocabulary of that run'):
    classify.classify_job(config, str(tmp_path / 'run'))
