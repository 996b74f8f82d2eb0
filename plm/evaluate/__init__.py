"""Evaluations beyond the training loss: held-out tables, classification F1, retrieval, ..."""
