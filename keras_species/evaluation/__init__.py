"""Evaluation: metrics, thresholds, test-time augmentation, plots and run reports."""
