"""Starting and restarting runs: resume from checkpoints (multi-process and Slurm launchers come later)."""
