"""Evaluation: generation metrics and task=predict; multiple-choice benchmarks and task=eval.

- generation_metrics(predictions, references) -> dict   llmft.evaluate.metrics
- predict(cfg, run_dir)              task=predict        llmft.evaluate.predict
- evaluate_benchmark(cfg, run_dir)   task=eval           llmft.evaluate.benchmark
"""
