"""Evaluation: generation metrics (BLEU-4, ROUGE-1/2/L, exact match) and task=predict.

- generation_metrics(predictions, references) -> dict   llmft.evaluate.metrics
- predict(cfg, run_dir)   task=predict                   llmft.evaluate.predict
"""
