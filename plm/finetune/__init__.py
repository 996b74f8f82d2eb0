"""Fine-tuning jobs on top of a pre-trained encoder: `classify` and `generate`.

  classify: Bible verse genre (6 classes) with a first-token classifier; trains on
            finetune.train_language, tests on each of finetune.test_languages
            (XLM's zero-shot cross-lingual transfer when they differ).
  generate: UNILM seq2seq fine-tuning on parallel verses (finetune.source ->
            finetune.target), beam-search decoding of the test split, BLEU.

Both start from config.init_from (params only) or from scratch when it is empty.
"""
