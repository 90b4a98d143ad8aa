"""The tasks run.py can perform: task.name -> "module:function".

Strings, not imports: a task's heavy dependencies load only when it is chosen.
"""

TASKS = {
    "train": "llmft.train:train",
    "chat": "llmft.infer.chat:chat",
    "serve": "llmft.infer.serve:serve",
    "predict": "llmft.evaluate.predict:predict",
    "eval": "llmft.evaluate.benchmark:evaluate_benchmark",
    "compare": "llmft.track.compare:compare_task",
    "export": "llmft.export.task:export",
    "estimate": "llmft.model.memory:estimate_task",
    "board": "llmft.board.task:board",
    "pipeline": "llmft.pipeline:run_pipeline",
}
