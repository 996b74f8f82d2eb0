"""The fields every training config shares, each with its one-line meaning.

A config file (configs/*.py) starts from `base()` and sets what makes its model
different: the objective, the embeddings, the languages. `shrink_for_cpu` is
the `:tiny` variant used by tests and quick checks.
"""
import ml_collections
from ml_collections import config_dict

from plm import models
from plm.partitioning import DEFAULT_RULES


def base(languages=('en',)) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.job = 'train'  # python -m plm.main --help lists the jobs (plm/main.py)
  c.seed = 0  # parameters, masking, dropout and data order all derive from it
  c.init_from = ''  # another run's checkpoints/ dir to start from (params only)

  c.data = ml_collections.ConfigDict()
  # 'bible' (shipped), 'textdir' (data.text_dir/<lang>.<split>.txt) or 'tfds_text' (every file
  # under data.text_dir/<lang>/, e.g. a WikiExtractor dump, built by TFDS into data.tfds_dir
  # and split by document hash: plm/data/builders/monolingual.py)
  c.data.corpus = 'bible'
  c.data.languages = tuple(languages)  # language codes; order gives the language ids
  c.data.text_dir = ''  # for corpus='textdir' or 'tfds_text'
  c.data.held_out_permille = 10  # tfds_text: documents per 1000 in each of validation and test
  c.data.tfds_dir = '~/tensorflow_datasets'  # where TFDS builds the corpus (array_record)
  c.data.vocab_path = ''  # sentencepiece model; '' = train one into {workdir}/vocab
  c.data.vocab_size = 8000  # BPE pieces shared by all languages
  c.data.seq_len = 128  # tokens per row
  # packed: documents flow densely across rows (MLM, CLM, TLM, UNILM);
  # sentences: one sentence a row, longer ones left out and counted (MASS)
  c.data.rows = 'packed'
  c.data.vocab_alpha = 0.5  # BPE trained on sentences sampled q ∝ p^alpha per language (XLM)
  c.data.vocab_fingerprint = ''  # the vocabulary this config expects (job=vocab prints it)
  c.data.language_alpha = 0.7  # rows sampled q ∝ p^alpha per language (XLM); 1 = proportional
  c.data.tlm_share = 0.0  # share of rows from parallel data (TLM); 0 = none, 0.5 = MLM+TLM
  c.data.tlm_pairs = ()  # TLM language pairs, e.g. ('en-es',); each used in both directions
  c.data.parallel_dir = ''  # '' = the Bible's aligned verses; else <a>-<b>.<split>.<lang> files
  # '' = tokenize and pack the corpus in memory at every start; else a directory made once
  # by job=prepare (array_record shards), streamed by grain (plm/data/prepared.py)
  c.data.prepared_dir = ''

  c.model = models.config('encoder_lm')  # the model's own fields: plm/models/encoder.py

  c.objective = ml_collections.ConfigDict()
  c.objective.name = 'mlm'  # plm.objectives.NAMES
  c.objective.mask_rate = 0.15  # share of tokens predicted
  c.objective.num_predictions = 20  # prediction slots per row (>= mask_rate * seq_len)
  c.objective.mlm_smoothing = 0.0  # mlm: XLM's frequency smoothing exponent (0.5 in the paper)
  c.objective.unilm_mix = (1 / 3, 1 / 6, 1 / 6, 1 / 3)  # unilm: bidir, l2r, r2l, seq2seq shares
  c.objective.ngram_prob = 0.2  # unilm: a masked unit is a bigram or trigram, else 1 token
  c.objective.mass_span = 0.5  # mass: share of a sentence's tokens in its span (1.0 = GPT-like)
  c.objective.mass_span_tokens = 0  # mass: span length in tokens; 0 = use mass_span
  # weight of each head's mean loss in the step's loss, e.g. {'mlm': 1.0, 'nsp': 0.5};
  # a head not named weighs 1, a name that is not a head of the objective is an error
  c.objective.loss_weights = ml_collections.ConfigDict()

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3  # peak learning rate
  c.optim.warmup_steps = 60
  c.optim.total_steps = steps = config_dict.FieldReference(600)  # decay horizon; follows train.steps
  c.optim.schedule = 'linear'  # linear | cosine decay after warmup
  c.optim.b1 = 0.9
  c.optim.b2 = 0.98
  c.optim.eps = 1e-6
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0  # global-norm clipping

  c.train = ml_collections.ConfigDict()
  c.train.steps = steps  # optimizer steps (shared reference with optim.total_steps)
  c.train.batch_size = 32  # global rows per step
  c.train.accum_steps = 1  # micro-batches per step (gradient accumulation)
  # > 0: logits and loss this many positions at a time, recomputed in the backward pass,
  # so [batch, positions, vocab] logits never exist at once (large vocabularies, CLM)
  c.train.loss_chunk = 0
  c.train.log_every = 50
  c.train.eval_every = 200  # held-out (validation) evaluation period
  c.train.eval_batch_size = 64
  c.train.checkpoint_every = 100
  c.train.keep_checkpoints = 3
  c.train.retrieval_every = 0  # Bible verse retrieval P@1 on validation every N steps; 0 = off
  c.train.nonfinite = 'stop'  # on a NaN/inf loss: 'stop' naming the step, or 'skip' the update

  c.embed = ml_collections.ConfigDict()  # the embed job (plm/jobs/embed.py)
  c.embed.input = ''  # UTF-8 text, one sentence per line
  c.embed.output = ''  # .npy file: float32 [lines, hidden], in input order
  c.embed.language = languages[0]  # language of the input (for language embeddings)
  c.embed.pooling = 'mean'  # mean | max | first (the bos position) over embed.layer
  c.embed.layer = -1  # hidden states to pool: -1 = last, 0 = embeddings, k = block k's output
  c.embed.batch_size = 64

  c.mine = ml_collections.ConfigDict()  # the mine job: bitext mining (plm/jobs/mine.py)
  c.mine.src = ''  # UTF-8 sentences of one language, one per line
  c.mine.tgt = ''  # UTF-8 sentences of the other language
  c.mine.src_language = languages[0]  # language of mine.src (one of data.languages)
  c.mine.tgt_language = languages[-1]  # language of mine.tgt
  c.mine.output = ''  # TSV written: score \t src sentence \t tgt sentence, best first
  c.mine.k = 4  # nearest neighbours in each direction (LASER's default)
  c.mine.margin = 'ratio'  # ratio | distance | absolute (plain cosine)
  c.mine.retrieval = 'max'  # max | intersect | forward | backward
  c.mine.threshold = 0.0  # keep pairs scored at least this (ratio margin: ~1.0 to 1.2)
  c.mine.backend = 'auto'  # auto (faiss when installed) | faiss | jnp (blocked matmuls)

  c.retrieval = ml_collections.ConfigDict()  # the retrieve job (plm/jobs/retrieve.py)
  c.retrieval.translations = ()  # two Bible translations; () = those of data.languages[:2]
  c.retrieval.center = False  # subtract each language's mean vector before the cosine
  c.retrieval.max_pairs = 0  # evaluate the first N verse pairs of the split; 0 = all
  c.retrieval.output = ''  # JSON file for the job's table; '' = {workdir}/retrieval_test.json

  c.distributed = ml_collections.ConfigDict()  # multi-process runs (plm/distributed.py)
  c.distributed.coordinator_address = ''  # host:port of process 0; '' = $JAX_COORDINATOR_ADDRESS
  c.distributed.num_processes = 0  # 0 = $JAX_NUM_PROCESSES (unset: a single-process run)
  c.distributed.process_id = -1  # this process, 0..num_processes-1; -1 = $JAX_PROCESS_ID
  c.distributed.auto = False  # True: let jax detect a TPU pod / SLURM / Open MPI cluster

  c.finetune = ml_collections.ConfigDict()  # the classify and generate jobs (plm/jobs/)
  c.finetune.seq_len = 128  # tokens per row (<= model.max_len); longer examples are an error
  c.finetune.skip_long = False  # True: leave out longer examples instead (count printed, saved)
  c.finetune.steps = 300  # fine-tuning optimizer steps
  c.finetune.batch_size = 32  # rows per step
  c.finetune.lr = 3e-4  # peak learning rate (optim.* gives the rest of AdamW)
  c.finetune.warmup_steps = 30
  c.finetune.eval_every = 0  # validation period in steps; 0 = none
  c.finetune.train_language = languages[0]  # classify: the labelled language it trains on
  c.finetune.test_languages = tuple(languages)  # classify: accuracy on each one's test split
  # classify on the user's TSV (plm/data/tsv.py): `text \t label` or `text_a \t text_b \t label`
  # lines; '' = the Bible genre task. Trained in finetune.train_language.
  c.finetune.train_file = ''
  c.finetune.test_files = ''  # with train_file: language=path,... e.g. en=test.en.tsv,de=test.de.tsv
  # classify: True = train an MLP on the model's frozen sentence vectors (embed.layer and
  # embed.pooling; LASER's zero-shot protocol); False = fine-tune it all (the encoder families
  # with BERT's pooler head; LASER with its BiLSTM under the MLP)
  c.finetune.freeze_encoder = False
  c.finetune.classifier_hidden = 256  # classify: the sentence-vector MLP's hidden units; 0 = linear
  c.finetune.source = 'en_kjv'  # generate: source translation (plm/data/bible.py)
  c.finetune.target = 'en_web'  # generate: target translation
  c.finetune.target_mask_rate = 0.7  # generate: share of target tokens masked (UNILM: 0.7)
  # generate: 'continue' (UNILM: the target's positions follow the source's) or 'restart'
  # (the target counts from 1 again, like TLM: target token j shares source token j's position)
  c.finetune.target_positions = 'continue'
  # generate: 'random' (UNILM: target_mask_rate of the target becomes [MASK] and is predicted)
  # or 'pseudo' (s2s-ft: every target token predicted from the real tokens before it, as in
  # decoding; rows hold the target twice, so pairs need len(source) + 2 * len(target) + 4 <= seq_len)
  c.finetune.target_masking = 'random'

  # generation: the generate, mt and translate jobs' searches (plm/decode/)
  c.decode = ml_collections.ConfigDict()
  c.decode.beam_size = 5  # beam width at test time (1 = greedy)
  c.decode.length_penalty = 1.0  # GNMT alpha; scores are log p / ((5 + len) / 6)^alpha
  c.decode.no_repeat_ngram = 3  # block repeated n-grams of this size; 0 = off
  c.decode.max_target_len = 96  # most tokens decoded per source (generate: within finetune.seq_len)
  c.decode.max_test_examples = 0  # decode the first N test pairs only; 0 = all
  c.decode.batch_size = 32  # sources per search
  c.decode.cache = True  # KV-cached steps (False: recompute every step, the reference)
  c.decode.input = ''  # decode this UTF-8 file (one source a line) with the run in --workdir
  c.decode.output = ''  # where decode.input's outputs go, one a line, in order

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1))  # -1 = all devices
  c.rules = DEFAULT_RULES  # logical axis -> mesh axis (plm/partitioning.py)
  return c


# Fields that moved: an override of the old name is answered with the new one
# (plm/main.py parse_flags).
MOVED = {
    **{f'{section}.{field}': f'decode.{field}'
       for section in ('finetune', 'mt')
       for field in ('beam_size', 'length_penalty', 'no_repeat_ngram', 'max_target_len',
                     'max_test_examples', 'input', 'output')},
    'finetune.decode_batch_size': 'decode.batch_size',
    'mt.decode_batch_size': 'decode.batch_size',
    'finetune.decode_cache': 'decode.cache',
    'distill.hard_weight': 'objective.loss_weights.mlm',  # it was never read: this one is
}


def shrink_for_cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `:tiny` variant: a 2-layer model that beats the unigram baseline in ~1 minute."""
  c.data.vocab_size = 1000
  c.data.seq_len = 64
  c.model.size = 'test'
  c.model.max_len = 64
  c.model.dropout = 0.0  # a few hundred steps on a 2-layer model: nothing to regularize
  c.model.attention_dropout = 0.0
  c.objective.num_predictions = 12
  c.optim.lr = 5e-3
  c.optim.warmup_steps = 20
  c.train.steps = 400
  c.train.batch_size = 32
  c.train.eval_every = 200
  c.finetune.seq_len = 64  # 14% of KJV verses and 70% of KJV/WEB pairs are longer: left out
  c.finetune.skip_long = True
  c.finetune.steps = 150
  c.finetune.lr = 3e-3  # a 2-layer head learns genres in ~100 steps only at this rate
  c.decode.max_target_len = 40
  c.decode.max_test_examples = 64
  return c
