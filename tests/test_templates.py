"""Chat templates: each family's documented layout, prefix stability, generation prompts, masking."""

from __future__ import annotations

import pytest
from conftest import train_test_tokenizer
from transformers import PreTrainedTokenizerFast

from llmft.data.errors import DataError
from llmft.data.templates import TEMPLATES, apply_template
from llmft.data.tokenize import IGNORE_INDEX, encode_conversation

SYSTEM = "Answer briefly."
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Add 2 and 3."},
    {"role": "assistant", "content": "2 + 3 = 5."},
    {"role": "user", "content": "Reverse the word.\ncat"},
    {"role": "assistant", "content": "tac"},
]
TOOLS = [
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}
]
WITH_TOOL_TURN = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": '{"name": "add", "arguments": {"a": 2, "b": 3}}'},
    {"role": "tool", "content": "5"},
    {"role": "assistant", "content": "It is 5."},
]
# What each family's prompt must end with when the assistant is to speak next.
GENERATION_OPENING = {
    "chatml": "<|im_start|>assistant\n",
    "qwen": "<|im_start|>assistant\n",
    "qwen3": "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "[/INST]",
    "gemma": "<start_of_turn>model\n",
    "phi3": "<|assistant|>\n",
}
# One exchange in each family's documented layout (bos <s>, eos </s> in the test tokenizer).
ONE_EXCHANGE = {
    "chatml": "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nAdd 2 and 3.<|im_end|>\n"
    "<|im_start|>assistant\n2 + 3 = 5.<|im_end|>\n",
    "qwen": "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nAdd 2 and 3.<|im_end|>\n"
    "<|im_start|>assistant\n2 + 3 = 5.<|im_end|>\n",
    "qwen3": "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nAdd 2 and 3.<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n2 + 3 = 5.<|im_end|>\n",
    "llama3": "<s><|start_header_id|>system<|end_header_id|>\n\nAnswer briefly.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nAdd 2 and 3.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n2 + 3 = 5.<|eot_id|>",
    "mistral": "<s>[INST] Answer briefly.\n\nAdd 2 and 3.[/INST] 2 + 3 = 5.</s>",
    "gemma": "<s><start_of_turn>user\nAnswer briefly.\n\nAdd 2 and 3.<end_of_turn>\n"
    "<start_of_turn>model\n2 + 3 = 5.<end_of_turn>\n",
    "phi3": "<|system|>\nAnswer briefly.<|end|>\n<|user|>\nAdd 2 and 3.<|end|>\n<|assistant|>\n2 + 3 = 5.<|end|>\n",
}
# The text each family trains on after a reply: its end-of-turn token.
END_OF_TURN = {
    "chatml": "<|im_end|>",
    "qwen": "<|im_end|>",
    "qwen3": "<|im_end|>",
    "llama3": "<|eot_id|>",
    "mistral": "</s>",
    "gemma": "<end_of_turn>",
    "phi3": "<|end|>",
}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """Every byte is a token, with <s>/</s>/<pad>; only rendering and offsets matter here."""
    return train_test_tokenizer([m["content"] for m in CONVERSATION + WITH_TOOL_TURN] * 20)


def render(tokenizer, name: str, messages, add_generation_prompt: bool = False, tools=None) -> str:
    tokenizer.chat_template = TEMPLATES[name]
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def labelled_runs(labels: list[int]) -> list[list[int]]:
    """The maximal runs of trained token ids."""
    runs: list[list[int]] = []
    for previous, label in zip([IGNORE_INDEX, *labels], labels, strict=False):
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
    return runs


@pytest.mark.parametrize("name", TEMPLATES)
def test_one_exchange_follows_the_family_layout(tokenizer, name):
    assert render(tokenizer, name, CONVERSATION[:3]) == ONE_EXCHANGE[name]


def test_qwen_adds_its_default_system_prompt_and_chatml_does_not(tokenizer):
    assert render(tokenizer, "qwen", CONVERSATION[1:3]).startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    )
    assert render(tokenizer, "chatml", CONVERSATION[1:3]).startswith("<|im_start|>user\n")


@pytest.mark.parametrize("name", TEMPLATES)
def test_multi_turn_render_with_system_and_generation_prompt(tokenizer, name):
    text = render(tokenizer, name, CONVERSATION[:4], add_generation_prompt=True)
    positions = [text.index(m["content"]) for m in CONVERSATION[:4]]
    assert positions == sorted(positions), "turns out of order"
    assert text.endswith(GENERATION_OPENING[name])
    without = render(tokenizer, name, CONVERSATION[:4])
    assert text.startswith(without)


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no_tools", "tools"])
@pytest.mark.parametrize("name", TEMPLATES)
def test_prefix_stable(tokenizer, name, tools):
    for messages in (CONVERSATION, WITH_TOOL_TURN):
        full = render(tokenizer, name, messages, tools=tools)
        for k in range(1, len(messages)):
            next_is_reply = messages[k]["role"] == "assistant"
            prefix = render(tokenizer, name, messages[:k], add_generation_prompt=next_is_reply, tools=tools)
            assert full.startswith(prefix), f"{name}: first {k} turns do not render as a prefix"


@pytest.mark.parametrize("name", TEMPLATES)
def test_tools_and_tool_results_are_rendered(tokenizer, name):
    text = render(tokenizer, name, WITH_TOOL_TURN, tools=TOOLS)
    assert '"name": "add"' in text.split("What is 2 + 3?")[0], (
        "tool specs must come before the first question"
    )
    assert "5" in text.split(WITH_TOOL_TURN[1]["content"])[1]


@pytest.mark.parametrize("name", TEMPLATES)
def test_labels_cover_exactly_the_replies_in_every_family(tokenizer, name):
    tokenizer.chat_template = TEMPLATES[name]
    row = {
        "system": SYSTEM,
        "tools": "",
        "messages": CONVERSATION[1:],
        "chosen": None,
        "rejected": None,
        "kto_tag": None,
        "text": None,
    }
    encoded = encode_conversation(tokenizer, row, cutoff_len=1024, train_on_prompt=False, mask_history=False)
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)
    assert encoded["input_ids"] == rendered["input_ids"]
    trained = [tokenizer.decode(run).strip() for run in labelled_runs(encoded["labels"])]
    assert trained == [f"2 + 3 = 5.{END_OF_TURN[name]}", f"tac{END_OF_TURN[name]}"]
    # transformers' own assistant mask, from the {% generation %} markers, agrees with ours
    mask = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )["assistant_masks"]
    assert [int(label != IGNORE_INDEX) for label in encoded["labels"]] == mask


def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer):
    # Phi-3's official template ends every rendering with eos_token, even mid-conversation.
    tokenizer.chat_template = (
        TEMPLATES["phi3"] + "{%- if not add_generation_prompt -%}{{- eos_token -}}{%- endif -%}"
    )
    row = {
        "system": "",
        "tools": "",
        "messages": CONVERSATION[1:],
        "chosen": None,
        "rejected": None,
        "kto_tag": None,
        "text": None,
    }
    with pytest.raises(
        DataError,
        match=r"not prefix-stable.*= 5.<\|end\|>\\n</s>' became '.*= 5.<\|end\|>\\n<\|user\|>.*"
        r"Fix: choose a template with model.template",
    ):
        encode_conversation(tokenizer, row, 1024)


def test_apply_template_sets_keeps_and_rejects(tokenizer):
    apply_template(tokenizer, "llama3")
    assert tokenizer.chat_template == TEMPLATES["llama3"]
    apply_template(tokenizer, None)
    assert tokenizer.chat_template == TEMPLATES["llama3"]
    with pytest.raises(ValueError, match="Valid names: chatml, qwen, qwen3, llama3, mistral, gemma, phi3"):
        apply_template(tokenizer, "llama-3")
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template: set model.template"):
        apply_template(tokenizer, None)
