"""Tiny models built offline: a BPE tokenizer trained on the shipped demo text and randomly
initialised weights of a real architecture, saved once in the normal save_pretrained layout.

They let every run, test and CI job exercise the real loading and training path without a hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmft.config.paths import cache_root

# Bump when the build recipe changes, so cached models built the old way are not reused.
FORMAT_VERSION = 1

DEMO_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"

ARCHITECTURES = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "phi3")
ARCHITECTURE_ALIASES = {"gemma": "gemma2", "phi": "phi3"}

BOS, EOS, PAD = "<s>", "<|im_end|>", "<pad>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, IM_START, EOS]

# ChatML; assistant content and its <|im_end|> sit inside generation markers so that
# return_assistant_tokens_mask (assistant-only loss) knows which tokens to train on.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def canonical_architecture(name: str) -> str:
    arch = ARCHITECTURE_ALIASES.get(name, name)
    if arch not in ARCHITECTURES:
        choices = ", ".join(ARCHITECTURES + tuple(ARCHITECTURE_ALIASES))
        raise ValueError(f"model.tiny.architecture={name!r} is not supported; choose one of: {choices}")
    return arch


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A TinyModelSpec dataclass, an OmegaConf node or a plain mapping, as a plain dict."""
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    if not isinstance(spec, Mapping):
        from omegaconf import OmegaConf

        return dict(OmegaConf.to_container(spec, resolve=True))
    return dict(spec)


def demo_files() -> list[Path]:
    files = sorted([*DEMO_DATA_DIR.glob("*.json"), *DEMO_DATA_DIR.glob("*.jsonl")])
    if not files:
        raise FileNotFoundError(
            f"no demo data (*.json, *.jsonl) in {DEMO_DATA_DIR}: the tiny tokenizer is trained on it; "
            "reinstall llmft or restore the llmft/data/demo directory"
        )
    return files


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def demo_corpus() -> list[str]:
    """Every string value in the shipped demo datasets, in a fixed order."""
    texts: list[str] = []
    for path in demo_files():
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            records = json.loads(raw)
        texts.extend(text for text in _strings(records) if text)
    return texts


def _build_key(spec: dict[str, Any], seed: int, corpus: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"spec": spec, "seed": seed, "format": FORMAT_VERSION}, sort_keys=True).encode())
    for text in corpus:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _train_tokenizer(corpus: list[str], vocab_size: int, model_max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[IM_START],
        chat_template=CHATML_TEMPLATE,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
    )


def _model_config(arch: str, spec: dict[str, Any], tokenizer):
    from transformers import AutoConfig

    head_dim = spec["hidden_size"] // spec["num_attention_heads"]
    kwargs: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec["hidden_size"],
        "intermediate_size": spec["intermediate_size"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_attention_heads": spec["num_attention_heads"],
        "num_key_value_heads": spec["num_key_value_heads"],
        "max_position_embeddings": spec["max_position_embeddings"],
        "initializer_range": spec["initializer_range"],
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    # Families whose defaults assume a 7B-sized head (qwen3: 128, gemma2: 256) get one that fits.
    if arch in ("qwen3", "gemma2"):
        kwargs["head_dim"] = head_dim
    if arch == "gemma2":
        kwargs["query_pre_attn_scalar"] = head_dim
    if arch == "phi3":
        kwargs["original_max_position_embeddings"] = spec["max_position_embeddings"]
    return AutoConfig.for_model(arch, **kwargs)


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """A one-shot build of a 1 MB model needs no "Writing model shards" bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _build(arch: str, spec: dict[str, Any], seed: int, corpus: list[str], out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = _train_tokenizer(corpus, spec["vocab_size"], spec["max_position_embeddings"])
    config = _model_config(arch, spec, tokenizer)
    with torch.random.fork_rng():  # a first-use build must not shift the run's own random stream
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with _quiet_progress_bars():
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def ensure_tiny_model(spec: Any, seed: int = 0, corpus: list[str] | None = None) -> Path:
    """Directory of the tiny model described by `spec`, built on first use.

    The tokenizer is trained on `corpus` (default: the shipped demo text). The directory name hashes
    the spec, seed, corpus and format version, so any change builds a new model; the build happens in
    a temporary directory renamed into place, so concurrent processes never see a half-written model.
    """
    spec_dict = spec_to_dict(spec)
    arch = canonical_architecture(spec_dict["architecture"])
    spec_dict["architecture"] = arch
    corpus = demo_corpus() if corpus is None else corpus
    tiny_dir = cache_root() / "tiny"
    target = tiny_dir / f"{arch}-{_build_key(spec_dict, seed, corpus)}"
    if target.is_dir():
        return target

    tiny_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=tiny_dir))
    try:
        _build(arch, spec_dict, seed, corpus, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not a lost race with another builder: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
