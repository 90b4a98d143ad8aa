"""Packing: tokenised samples placed into rows of at most cutoff_len tokens, best-fit decreasing.

A packed row keeps its samples' lengths (`seq_lengths`), so the padding-free collator restarts the
positions at every sample and attention never crosses a boundary: packing changes how many samples a
step sees, never what one sample contributes to the loss.
"""

from __future__ import annotations

import bisect

from datasets import Dataset, Features, List, Value

PACKED_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "seq_lengths": List(Value("int32")),
    }
)


def best_fit_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sample indices per row: longest first, each into the fullest row that still has room."""
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free space, row index), sorted
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]  # at most capacity: tokenisation cut every sample to cutoff_len
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            space, row = free.pop(slot)
        else:
            space, row = capacity, len(rows)
            rows.append([])
        rows[row].append(index)
        if space - length > 0:
            bisect.insort(free, (space - length, row))
    return rows


def pack(dataset: Dataset, cutoff_len: int) -> Dataset:
    """Rows of input_ids/labels (samples concatenated, each at most cutoff_len long) with seq_lengths."""
    input_ids, labels = dataset["input_ids"], dataset["labels"]
    packed: dict[str, list] = {name: [] for name in PACKED_FEATURES}
    for row in best_fit_rows([len(ids) for ids in input_ids], cutoff_len):
        packed["input_ids"].append([token for index in row for token in input_ids[index]])
        packed["labels"].append([label for index in row for label in labels[index]])
        packed["seq_lengths"].append([len(input_ids[index]) for index in row])
    return Dataset.from_dict(packed, features=PACKED_FEATURES)
