"""The benchmark's deterministic assets, built offline into $LLMFT_CACHE/bench on first use.

- a ~30M-parameter Llama (hidden 512, intermediate 1376, 8 layers, 8 heads, untied embeddings) with a
  4096-token byte-level BPE trained on the synthetic text below, built by llmft's tiny-model builder
  and loaded through the same from_pretrained path as any model;
- 2000 alpaca rows of 20-400 tokens each (median about 85 once templated) and 1000 preference rows,
  made of pseudo-words with a Zipf-like frequency, so the BPE and the lengths look like real text.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from llmft.config.paths import cache_root
from llmft.model.tiny import ensure_tiny_model

ASSETS_VERSION = 1
SEED = 42
SFT_ROWS, PREFERENCE_ROWS = 2000, 1000
MIN_TOKENS, MEDIAN_TOKENS, MAX_TOKENS = 20, 85, 400
TEMPLATE_TOKENS = 20  # role markers, capitals and full stops the word count does not see

# The ~30M model of the benchmark (TinyModelSpec fields); about 27.4M parameters take part in matmuls.
MODEL_SPEC = dict(
    architecture="llama",
    vocab_size=4096,
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=8,
    max_position_embeddings=1024,
    initializer_range=0.02,
)
SYLLABLES = "ka ri mo tu le sa ni po vel dor an est ing qua zor mi lu ber ta con ex ul ph or".split()


# Llama-3-8B's shape (random weights, built on the GPU): the GPU workload of the benchmark.
LLAMA3_8B_SHAPE = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000.0,
)


@dataclass(frozen=True)
class Assets:
    model_dir: Path
    sft_file: Path
    preference_file: Path


def _lexicon(rng: random.Random, size: int = 6000) -> list[str]:
    words = {"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


class _Writer:
    """Sentences of pseudo-words: word i is drawn with weight 1/(i+1), like natural text."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = _lexicon(rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]

    def words_(self, count: int) -> str:
        chosen = self.rng.choices(self.words, weights=self.weights, k=max(1, count))
        return " ".join(chosen).capitalize() + "."


def _target_tokens(rng: random.Random) -> int:
    """Log-normal lengths with the median and bounds the benchmark asks for."""
    return int(min(MAX_TOKENS, max(MIN_TOKENS, rng.lognormvariate(math.log(MEDIAN_TOKENS), 0.75))))


def _rows(writer: _Writer, count: int, tokens_per_word: float, preference: bool) -> list[dict]:
    """Rows whose templated prompt + reply come to about _target_tokens() tokens."""
    rows = []
    for _ in range(count):
        words = max(4, round((_target_tokens(writer.rng) - TEMPLATE_TOKENS) / tokens_per_word))
        prompt_words = max(2, min(words // 3, writer.rng.randint(3, 30)))
        row = {"instruction": writer.words_(prompt_words), "input": ""}
        if preference:
            reply_words = words - prompt_words
            row.update(chosen=writer.words_(reply_words), rejected=writer.words_(reply_words))
        else:
            row["output"] = writer.words_(words - prompt_words)
        rows.append(row)
    return rows


def _tokens_per_word(model_dir: Path, writer: _Writer) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sample = writer.words_(5000)
    return len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / 5000


def ensure_assets() -> Assets:
    """The benchmark's model and data files, built once per ASSETS_VERSION."""
    root = cache_root() / "bench" / f"v{ASSETS_VERSION}"
    sft_file, preference_file = root / "sft.json", root / "preference.json"
    writer = _Writer(random.Random(SEED))
    corpus = [writer.words_(writer.rng.randint(5, 60)) for _ in range(20000)]
    model_dir = ensure_tiny_model(MODEL_SPEC, seed=SEED, corpus=corpus)
    if not (sft_file.is_file() and preference_file.is_file()):
        root.mkdir(parents=True, exist_ok=True)
        ratio = _tokens_per_word(model_dir, writer)
        for path, count, preference in (
            (sft_file, SFT_ROWS, False),
            (preference_file, PREFERENCE_ROWS, True),
        ):
            staging = path.with_suffix(".tmp")
            staging.write_text(json.dumps(_rows(writer, count, ratio, preference)))
            staging.rename(path)
    return Assets(model_dir, sft_file, preference_file)


def ensure_llama3_8b_shaped(tokenizer_dir: Path) -> Path:
    """A randomly initialised model of Llama-3-8B's shape in bf16 (16 GB on disk), with the benchmark's
    tokenizer (its 4096 ids are a subset of the 128256 rows); built on the GPU, once."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = cache_root() / "bench" / f"v{ASSETS_VERSION}" / "llama3-8b-shaped"
    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        **LLAMA3_8B_SHAPE,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(target)
    return target
