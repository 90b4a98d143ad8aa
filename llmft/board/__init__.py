"""The board (`python run.py task=board`): launch, watch, compare and chat with runs from a browser.

It composes plain `python run.py ...` commands and reads run dirs and MLflow; no run needs it.

form        the Train tab's fields -> Hydra overrides (one value per field, injections refused)
checks      those overrides through the same compose-time checks as run.py, each problem to its field
processes   runs as their own processes: start, find again after a restart, stop, resume, delete
progress    step, ETA, loss curves and the log tail of a run dir
history     the MLflow experiment's runs: table, loss curves, params side by side, UI link
preview     the first dataset rows as the model sees them, prompt and trained tokens marked
finished    commands on a finished run (chat, eval, predict, export) and its chat engine
ui          the Gradio page; task: the entry point
"""
