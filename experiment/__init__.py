"""Shared machinery of the suite: base models, task data, the prompt format, the training
loop, evaluation through lm-evaluation-harness, and run records. The DAG's scripts in
``workflow/scripts/`` are thin wrappers around these functions, so tests call them directly."""
