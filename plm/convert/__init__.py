"""Converters from public checkpoints to plm parameter trees."""
