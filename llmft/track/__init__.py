"""What a run records: the per-step log, the final metrics, the loss plot, the environment."""
