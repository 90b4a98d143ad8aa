"""The first rows of the chosen data as the model will see them: the templated text, token by token,
with the tokens that are trained on (labels) told apart from those that are only read (the prompt)."""

from __future__ import annotations

from omegaconf import DictConfig

PROMPT, TRAINED = "prompt", "trained"


def segments(tokenizer, input_ids: list[int], labels: list[int]) -> list[tuple[str, str]]:
    """[(text, PROMPT | TRAINED), ...]: runs of consecutive tokens with the same role, decoded."""
    from llmft.data.tokenize import IGNORE_INDEX

    runs: list[tuple[list[int], str]] = []
    for token, label in zip(input_ids, labels, strict=True):
        role = PROMPT if label == IGNORE_INDEX else TRAINED
        if runs and runs[-1][1] == role:
            runs[-1][0].append(token)
        else:
            runs.append(([token], role))
    return [(tokenizer.decode(ids), role) for ids, role in runs]


def preview_rows(cfg: DictConfig, rows: int = 3) -> list[list[tuple[str, str]]]:
    """Segments of the first `rows` samples of cfg's datasets, tokenised as the training stage will."""
    from llmft.data import encode_conversation, encode_text, load_canonical
    from llmft.model.loader import chat_tokenizer

    tokenizer = chat_tokenizer(cfg.model)
    data = cfg.data
    canonical = load_canonical(cfg.dataset, data, cfg.seed)
    previews = []
    for row in canonical.select(range(min(rows, len(canonical)))):
        if row["text"] is not None:
            encoded = encode_text(tokenizer, row["text"], data.cutoff_len)
        elif row["chosen"] is not None:  # a preference pair: the prompt and the preferred reply
            chosen = {**row, "messages": [*row["messages"], {"role": "assistant", "content": row["chosen"]}]}
            encoded = encode_conversation(tokenizer, {**chosen, "chosen": None}, data.cutoff_len)
        else:
            encoded = encode_conversation(
                tokenizer, row, data.cutoff_len, data.train_on_prompt, data.mask_history
            )
        if encoded is not None:
            previews.append(segments(tokenizer, encoded["input_ids"], encoded["labels"]))
    return previews
