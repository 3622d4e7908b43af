"""Training: phase plans, schedules, callbacks, run folders, cross-validation, feature caches."""
