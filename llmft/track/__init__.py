"""What a run records, and where.

run_log / run_files   trainer_log.jsonl and metrics.json (written, read)
plots                 loss.png
environment           env.json: versions, git commit, hardware
reporters             the Trainer's own trackers (TensorBoard, W&B)
tracking              the MLflow run around a training stage (params, per-step metrics, artifacts, status)
sweep, jobs           multiruns: a parent run with a child per job; failing jobs that do not sink the sweep
summary, compare      the table and plot of many runs (sweep dir or MLflow experiment)
hydra_callbacks       the Hydra callbacks conf/config.yaml installs
secrets               keys, tokens and passwords kept out of all of the above
"""
