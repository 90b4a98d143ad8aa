"""Generation metrics from maintained libraries: BLEU-4 (sacrebleu), ROUGE-1/2/L (rouge-score), exact match.

Both see the same words: jieba's segmentation (as LLaMA-Factory does), which splits Chinese into words
and leaves other scripts split at spaces and punctuation; whitespace is dropped. Scores are percentages.

- BLEU-4 is sacrebleu's corpus BLEU over all samples (its default exponential smoothing, so an order
  without a match lowers the score instead of zeroing it).
- ROUGE-N and ROUGE-L are rouge-score's F1 per sample, averaged over samples.
- exact_match: the prediction equals the label, ignoring surrounding whitespace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict..." on every run
    return jieba


def words(text: str) -> list[str]:
    return [word for word in _jieba().cut(text) if word.strip()]


class _Words:
    """rouge-score's tokenizer interface; its default one drops every non-ASCII word (all of Chinese)."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    joined = [" ".join(words(prediction)) for prediction in predictions]
    return sacrebleu.corpus_bleu(joined, [[" ".join(words(r)) for r in references]], tokenize="none").score


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean F1 of rouge-1, rouge-2 and rouge-l, in percent."""
    from rouge_score.rouge_scorer import RougeScorer

    names = {"rouge1": "rouge-1", "rouge2": "rouge-2", "rougeL": "rouge-l"}
    scorer = RougeScorer(list(names), tokenizer=_Words())
    scores = [
        scorer.score(reference, prediction)
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    return {
        ours: 100 * sum(s[theirs].fmeasure for s in scores) / len(scores) for theirs, ours in names.items()
    }


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """bleu-4, rouge-1, rouge-2, rouge-l and exact_match, in percent."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references: they must pair up"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    exact = sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
    return {
        "bleu-4": corpus_bleu(predictions, references),
        **rouge(predictions, references),
        "exact_match": 100 * exact / len(predictions),
    }
