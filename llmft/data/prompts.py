"""Prompts for online RL (ppo, grpo, rloo): any conversational dataset, cut before its last reply.

Each row becomes:
- prompt:    the conversation up to its last user turn, rendered with the chat template and the
             assistant opening (add_generation_prompt), as the policy sees it;
- messages:  the same turns as a list (system first when present), for reward models that render
             prompt + reply with their own template;
- reference: the reply the dataset gives (the last assistant turn, or `chosen` for preference
             rows; "" when none), for rewards that compare against it.
Reward functions receive `messages` and `reference` as keyword arguments.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from datasets import Dataset

from llmft.data.canonical import prompt_and_reply
from llmft.data.errors import DataError
from llmft.data.loader import load_canonical
from llmft.data.sources import require_data_kind

logger = logging.getLogger(__name__)


def build_prompt_dataset(cfg: Any, tokenizer: Any) -> Dataset:
    """The prompt dataset of the composed config (cfg.dataset, cfg.data, cfg.seed), shuffled by the seed.

    Prompts longer than data.cutoff_len tokens are dropped (and counted); text-only datasets are refused.
    """
    require_data_kind(cfg.dataset, "prompts")
    rows = load_canonical(cfg.dataset, cfg.data, cfg.seed).shuffle(seed=cfg.seed)
    prompts, conversations, references, too_long = [], [], [], 0
    for row in rows:
        messages, reference = prompt_and_reply(row)
        tools = json.loads(row["tools"]) if row["tools"] else None
        prompt = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > cfg.data.cutoff_len:
            too_long += 1
            continue
        prompts.append(prompt)
        conversations.append(messages)
        references.append(reference or "")  # none given: reward functions get ""
    if too_long:
        logger.info("dropped %d prompts longer than data.cutoff_len=%d tokens", too_long, cfg.data.cutoff_len)
    if not prompts:
        raise DataError(
            f"no prompt fits in data.cutoff_len={cfg.data.cutoff_len} tokens. Fix: raise data.cutoff_len."
        )
    return Dataset.from_dict({"prompt": prompts, "messages": conversations, "reference": references})
