"""Evaluations beyond the training loss: cross-lingual retrieval, ..."""
