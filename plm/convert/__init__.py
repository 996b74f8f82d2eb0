"""Converters between public checkpoints (transformers safetensors) and plm parameter trees."""
