"""The speed benchmark (python -m llmft.bench): figures for this machine, not a test."""
