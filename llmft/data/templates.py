"""Chat templates for model families, written from each family's documented prompt format.

Every template:
- takes an optional leading system message and a `tools` list (described in the system text);
- renders user, assistant and tool turns, and the assistant opening on add_generation_prompt;
- is prefix-stable (rendering the first k turns is a prefix of rendering them all), which is
  what llmft.data.tokenize relies on to find the assistant tokens;
- wraps each assistant reply and its end-of-turn token in {% generation %} markers, so that
  transformers' return_assistant_tokens_mask (and TRL's assistant_only_loss) work too.
Families without a tool role (gemma, phi3) render tool results as user turns.
"""

from __future__ import annotations

from typing import Any

from llmft.config.errors import did_you_mean
from llmft.data.errors import DataError

# A leading system message becomes `system`; the other turns are `loop_messages`.
_SPLIT_SYSTEM = r"""
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set system = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
"""

# For families without their own tool syntax: the tool specs are appended to the system text.
_TOOLS_IN_SYSTEM = r"""
{%- if tools -%}
    {%- set system = (system + '\n\n' if system else '') + 'You can call these functions:\n'
        + tools | map('tojson') | join('\n') -%}
{%- endif -%}
"""

_CHATML = r"""
{%- if not system -%}{%- set system = DEFAULT_SYSTEM -%}{%- endif -%}
{%- if tools -%}
    {{- '<|im_start|>system\n' + (system + '\n\n' if system else '') + '# Tools\n\nYou may call one or more '
        + 'functions to assist with the user query.\n\nYou are provided with function signatures within '
        + '<tools></tools> XML tags:\n<tools>\n' + tools | map('tojson') | join('\n') + '\n</tools>\n\n'
        + 'For each function call, return a json object with function name and arguments within '
        + '<tool_call></tool_call> XML tags:\n<tool_call>\n'
        + '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif system -%}
    {{- '<|im_start|>system\n' + system + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'assistant' -%}
        {{- '<|im_start|>assistant\n' + ASSISTANT_PREFIX -}}
        {%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}
        {{- '\n' -}}
    {%- elif message['role'] == 'tool' -%}
        {{- '<|im_start|>user\n<tool_response>\n' + message['content'] + '\n</tool_response><|im_end|>\n' -}}
    {%- else -%}
        {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' + ASSISTANT_PREFIX -}}{%- endif -%}
"""


def _chatml(default_system: str = "", assistant_prefix: str = "") -> str:
    """ChatML (<|im_start|>role ... <|im_end|>) with Qwen's tool format.

    assistant_prefix opens every assistant turn and the generation prompt alike, so it is never
    trained on; Qwen3's non-thinking mode uses it for its empty <think></think> block.
    """
    constants = f"{{%- set DEFAULT_SYSTEM = {default_system!r} -%}}{{%- set ASSISTANT_PREFIX = {assistant_prefix!r} -%}}"
    return constants + _SPLIT_SYSTEM + _CHATML


LLAMA3 = (
    "{{- bos_token -}}"
    + _SPLIT_SYSTEM
    + _TOOLS_IN_SYSTEM
    + r"""
{%- if system -%}
    {{- '<|start_header_id|>system<|end_header_id|>\n\n' + system | trim + '<|eot_id|>' -}}
{%- endif -%}
{%- for message in loop_messages -%}
    {{- '<|start_header_id|>' + ('ipython' if message['role'] == 'tool' else message['role'])
        + '<|end_header_id|>\n\n' -}}
    {%- if message['role'] == 'assistant' -%}
        {%- generation -%}{{- message['content'] | trim + '<|eot_id|>' -}}{%- endgeneration -%}
    {%- else -%}
        {{- message['content'] | trim + '<|eot_id|>' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}
"""
)

# Mistral v0.3: the system text opens the first [INST] (the official template moves it to the
# last one, which no prefix-stable template can do) and tools are declared once, up front.
# A prompt already ends at [/INST], so add_generation_prompt has nothing to add.
MISTRAL = (
    "{{- bos_token -}}"
    + _SPLIT_SYSTEM
    + r"""
{%- if tools -%}{{- '[AVAILABLE_TOOLS] ' + tools | tojson + '[/AVAILABLE_TOOLS]' -}}{%- endif -%}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'user' -%}
        {{- '[INST] ' + (system + '\n\n' if loop.first and system else '') + message['content'] + '[/INST]' -}}
    {%- elif message['role'] == 'tool' -%}
        {{- '[TOOL_RESULTS] ' + message['content'] + '[/TOOL_RESULTS]' -}}
    {%- else -%}
        {%- generation -%}{{- ' ' + message['content'] | trim + eos_token -}}{%- endgeneration -%}
    {%- endif -%}
{%- endfor -%}
"""
)

# Gemma 2 has no system role: the system text (and tools) open the first user turn.
GEMMA = (
    "{{- bos_token -}}"
    + _SPLIT_SYSTEM
    + _TOOLS_IN_SYSTEM
    + r"""
{%- for message in loop_messages -%}
    {%- set content = (system + '\n\n' + message['content']) if loop.first and system else message['content'] -%}
    {%- if message['role'] == 'assistant' -%}
        {{- '<start_of_turn>model\n' -}}
        {%- generation -%}{{- content | trim + '<end_of_turn>' -}}{%- endgeneration -%}
        {{- '\n' -}}
    {%- else -%}
        {{- '<start_of_turn>user\n' + content | trim + '<end_of_turn>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
"""
)

# Phi-3 / 3.5: the official template ends every rendering with eos_token, which is not
# prefix-stable; generation stops at <|end|> anyway, so it is left out.
PHI3 = (
    _SPLIT_SYSTEM
    + _TOOLS_IN_SYSTEM
    + r"""
{%- if system -%}{{- '<|system|>\n' + system + '<|end|>\n' -}}{%- endif -%}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'assistant' -%}
        {{- '<|assistant|>\n' -}}
        {%- generation -%}{{- message['content'] + '<|end|>' -}}{%- endgeneration -%}
        {{- '\n' -}}
    {%- else -%}
        {{- '<|user|>\n' + message['content'] + '<|end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- endif -%}
"""
)

TEMPLATES: dict[str, str] = {
    "chatml": _chatml(),
    "qwen": _chatml(default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    "qwen3": _chatml(assistant_prefix="<think>\n\n</think>\n\n"),
    "llama3": LLAMA3,
    "mistral": MISTRAL,
    "gemma": GEMMA,
    "phi3": PHI3,
}


# LLaMA-Factory's template names (its `template:` key), so its users keep theirs: the same prompt format
# as one of llmft's templates, or None where the model's tokenizer ships its own chat template.
LLAMA_FACTORY_TEMPLATES: dict[str, str | None] = {
    "chatml": "chatml",
    "yi": "chatml",
    "qwen": "qwen",
    "qwen3": "qwen3",
    "qwen3_nothink": "qwen3",
    "llama3": "llama3",
    "mistral": "mistral",
    "gemma": "gemma",
    "gemma2": "gemma",
    "phi": "phi3",
    **dict.fromkeys(
        (
            "default", "empty", "fewshot", "alpaca", "vicuna", "llama2", "llama4", "mistral_small",
            "ministral", "gemma3", "gemma3n", "phi_small", "phi4", "deepseek", "deepseek3", "deepseekr1",
            "deepseekcoder", "glm4", "glm4_moe", "chatglm3", "baichuan2", "cohere", "falcon", "falcon_h1",
            "exaone", "cpm3", "cpm4", "dbrx", "intern2", "intern3", "granite3", "zephyr", "openchat", "chatml_de",
        ),
        None,
    ),
}  # fmt: skip


def template_problems(name: str | None) -> list[str]:
    """model.template names a template llmft has, or LLaMA-Factory's name for one (None: the tokenizer's own)."""
    if name is None or name in TEMPLATES or name in LLAMA_FACTORY_TEMPLATES:
        return []
    known = [*TEMPLATES, *LLAMA_FACTORY_TEMPLATES]
    return [
        f"model.template={name!r} is not a chat template llmft knows.{did_you_mean(name, known)} Valid names: "
        f"{', '.join(TEMPLATES)}, LLaMA-Factory's ({', '.join(sorted(LLAMA_FACTORY_TEMPLATES))}), or null "
        "for the tokenizer's own."
    ]


def template_for(name: str | None) -> str | None:
    """The llmft template a model.template names (llmft's own or LLaMA-Factory's); None: the tokenizer's."""
    if problems := template_problems(name):
        raise DataError(problems[0])
    return name if name is None or name in TEMPLATES else LLAMA_FACTORY_TEMPLATES[name]


def apply_template(tokenizer: Any, name: str | None) -> None:
    """Set tokenizer.chat_template to the named template; None (or a LLaMA-Factory name of a family
    llmft has no template for) keeps the tokenizer's own."""
    name = template_for(name)
    if name is None:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError(
                f"the tokenizer of '{tokenizer.name_or_path}' has no chat template: set model.template to one "
                f"of: {', '.join(TEMPLATES)}."
            )
        return
    tokenizer.chat_template = TEMPLATES[name]
