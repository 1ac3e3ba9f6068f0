"""Scoring models on text: strict bits per byte, compression, and the lm-evaluation-harness model class."""
