"""An Ollama Modelfile beside the export.

`FROM .` lets `ollama create` import the safetensors directly; Ollama converts them itself for the
architectures it supports (Llama, Mistral, Gemma, Phi-3, Qwen2, ...). Others need a GGUF file made with
llama.cpp first (the file says how). Ollama does not run Jinja chat templates: TEMPLATE is written in
Go template syntax for the two families llmft can recognise (ChatML, Llama 3); for the others the file
keeps the stop tokens and asks for a TEMPLATE. These Go templates are not executed by llmft's tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmft.export.save import turn_end_token

MODELFILE = "Modelfile"

CHATML_GO_TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

LLAMA3_GO_TEMPLATE = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else }}<|start_header_id|>{{ if eq .Role "tool" }}ipython{{ else }}{{ .Role }}{{ end }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""

# A marker in the rendered chat template -> (family, Go template)
FAMILIES = (
    ("<|im_start|>", "ChatML", CHATML_GO_TEMPLATE),
    ("<|start_header_id|>", "Llama 3", LLAMA3_GO_TEMPLATE),
)

HEADER = """# Ollama Modelfile written by llmft (python run.py task=export).
# Build and run, from this directory:
#   ollama create my-model -f Modelfile && ollama run my-model
# FROM . imports these safetensors; Ollama converts them itself for the architectures it supports
# (Llama, Mistral, Gemma, Phi-3, Qwen2, ...). If `ollama create` refuses this one, convert to GGUF with
# llama.cpp first and point FROM at the file:
#   python llama.cpp/convert_hf_to_gguf.py . --outfile model.gguf --outtype q8_0
#   (then edit below: FROM ./model.gguf)
"""


def chat_family(tokenizer: Any) -> tuple[str, str] | None:
    """(family name, Go template) when the tokenizer's chat template is one Ollama's syntax is written for."""
    if not tokenizer.chat_template:
        return None
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    return next(((name, go) for marker, name, go in FAMILIES if marker in rendered), None)


def _quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile_text(tokenizer: Any, generation_cfg: Any, system_prompt: str | None) -> str:
    lines = [HEADER, "FROM .", ""]
    family = chat_family(tokenizer)
    if family is not None:
        lines += [
            f"# Chat format: {family[0]} (the training chat template, rewritten as a Go template).",
            f"TEMPLATE {_quoted(family[1])}",
            "",
        ]
    else:
        lines += [
            "# This chat template is not one llmft can rewrite for Ollama (ChatML, Llama 3 are): write a",
            "# TEMPLATE in Go template syntax (https://github.com/ollama/ollama/blob/main/docs/template.md)",
            "# that matches tokenizer_config.json / chat_template.jinja here, or Ollama may guess one.",
            "",
        ]
    if system_prompt:
        lines += [f"SYSTEM {_quoted(system_prompt)}", ""]
    stops = [token for token in (turn_end_token(tokenizer), tokenizer.eos_token) if token]
    lines += [f'PARAMETER stop "{token}"' for token in dict.fromkeys(stops)]
    if generation_cfg.do_sample:
        lines += [
            f"PARAMETER temperature {generation_cfg.temperature}",
            f"PARAMETER top_p {generation_cfg.top_p}",
            f"PARAMETER top_k {generation_cfg.top_k}",
        ]
    else:
        lines.append("PARAMETER temperature 0")
    lines.append(f"PARAMETER repeat_penalty {generation_cfg.repetition_penalty}")
    return "\n".join(lines) + "\n"


def write_modelfile(export_dir: Path, tokenizer: Any, generation_cfg: Any, system_prompt: str | None) -> Path:
    path = Path(export_dir) / MODELFILE
    path.write_text(modelfile_text(tokenizer, generation_cfg, system_prompt), encoding="utf-8")
    return path
