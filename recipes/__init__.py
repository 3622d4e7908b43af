"""Runnable recipes, one per report approach: ``python -m recipes.<name> --help``."""
