"""Evaluation: metrics, the full and sampled protocols, validation and the baselines."""
