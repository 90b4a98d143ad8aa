"""Write the export: sharded safetensors, the tokenizer with its chat template, a generation config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TURN_PROBE = "LLMFT-END-OF-TURN-PROBE"


def turn_end_token(tokenizer: Any) -> str | None:
    """The special token the chat template puts right after an assistant reply (<|im_end|>, <|eot_id|>, ...)."""
    if not tokenizer.chat_template:
        return None
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": TURN_PROBE}]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    after = rendered.split(TURN_PROBE, 1)[1] if TURN_PROBE in rendered else ""
    specials = sorted({*tokenizer.all_special_tokens, *tokenizer.get_added_vocab()}, key=len, reverse=True)
    return next((token for token in specials if after.startswith(token)), None)


def generation_config(model: Any, tokenizer: Any, generation_cfg: Any):
    """The model's generation config, stopping at eos and at the template's turn end, sampling like
    llmft's `generation` settings."""
    config = model.generation_config
    end_ids = {tokenizer.eos_token_id}
    if (token := turn_end_token(tokenizer)) is not None:
        end_ids.add(tokenizer.convert_tokens_to_ids(token))
    config.eos_token_id = sorted(i for i in end_ids if i is not None)
    config.pad_token_id = tokenizer.pad_token_id
    config.do_sample = generation_cfg.do_sample
    if generation_cfg.do_sample:
        config.temperature = generation_cfg.temperature
        config.top_p = generation_cfg.top_p
        config.top_k = generation_cfg.top_k
    config.repetition_penalty = generation_cfg.repetition_penalty
    return config


def save_export(
    model: Any, tokenizer: Any, export_dir: Path, max_shard_size: str, generation_cfg: Any
) -> Path:
    """save_pretrained layout loadable by plain transformers (and vLLM, TGI, llama.cpp's converter)."""
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True
    if model.can_generate():  # not a reward model
        model.generation_config = generation_config(model, tokenizer, generation_cfg)
    model.save_pretrained(export_dir, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(export_dir)
    return export_dir
