"""Generation metrics, written out so their definition is plain: BLEU-4, ROUGE-1/2/L, exact match.

Texts are compared as word lists: lowercased, words and punctuation marks split apart, and each
CJK character a word of its own (Chinese and Japanese have no spaces). Scores are percentages.

- BLEU-4 is corpus-level (Papineni et al. 2002): clipped n-gram matches summed over all samples
  for n = 1..4, their geometric mean times the brevity penalty; 0 when some order has no match.
- ROUGE-N and ROUGE-L are F1 scores (n-gram overlap; longest common subsequence) per sample,
  averaged over samples.
- exact_match: the prediction equals the label, ignoring surrounding whitespace.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}\W]+|[^\s\w]", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(predictions: Sequence[str], references: Sequence[str], max_order: int = 4) -> float:
    matches = [0] * max_order
    totals = [0] * max_order
    prediction_length = reference_length = 0
    for prediction, reference in zip(predictions, references, strict=True):
        hyp, ref = words(prediction), words(reference)
        prediction_length += len(hyp)
        reference_length += len(ref)
        for n in range(1, max_order + 1):
            hyp_ngrams, ref_ngrams = ngrams(hyp, n), ngrams(ref, n)
            matches[n - 1] += sum(min(count, ref_ngrams[gram]) for gram, count in hyp_ngrams.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_order
    brevity = (
        1.0 if prediction_length > reference_length else math.exp(1 - reference_length / prediction_length)
    )
    return 100 * brevity * math.exp(log_precision)


def f1(overlap: int, predicted: int, reference: int) -> float:
    if predicted == 0 and reference == 0:
        return 1.0  # both empty: identical
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def rouge_n(prediction: str, reference: str, n: int) -> float:
    hyp, ref = ngrams(words(prediction), n), ngrams(words(reference), n)
    overlap = sum((hyp & ref).values())
    return f1(overlap, sum(hyp.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if item == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    hyp, ref = words(prediction), words(reference)
    return f1(lcs_length(hyp, ref), len(hyp), len(ref))


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """bleu-4, rouge-1, rouge-2, rouge-l and exact_match, in percent."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references: they must pair up"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    count = len(predictions)
    pairs = list(zip(predictions, references, strict=True))
    return {
        "bleu-4": corpus_bleu(predictions, references),
        "rouge-1": 100 * sum(rouge_n(p, r, 1) for p, r in pairs) / count,
        "rouge-2": 100 * sum(rouge_n(p, r, 2) for p, r in pairs) / count,
        "rouge-l": 100 * sum(rouge_l(p, r) for p, r in pairs) / count,
        "exact_match": 100 * sum(p.strip() == r.strip() for p, r in pairs) / count,
    }
