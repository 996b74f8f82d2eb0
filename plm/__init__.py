"""plm: BERT-family pretrained language models on one JAX/Flax backbone."""
