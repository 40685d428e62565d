"""Hydra apps' task functions (one module per console script)."""
