"""The SGLang backend (CUDA GPUs): fast batched generation, LoRA adapters served unmerged.

Replies come back whole, so its stream is one piece; token-by-token streaming is the hf
backend's. SGLang's offline engine takes no per-request seed: the run's seed is its seed.
"""

from __future__ import annotations

import threading
from typing import Any

import sglang

from llmft.infer.engine import Completion, Engine, SamplingParams, TextStream, served_model_name, whole_reply
from llmft.infer.hf_engine import END_OF_TURN_TOKENS
from llmft.model.loader import chat_tokenizer, resolve_model_path


class SGLangEngine(Engine):
    def __init__(self, runtime: Any, tokenizer: Any, model_name: str, adapter: str | None):
        super().__init__(tokenizer, model_name, runtime.tokenizer_manager.context_len)
        self.runtime = runtime
        self._adapter = adapter
        added = tokenizer.get_added_vocab()
        self._end_ids = [added[token] for token in END_OF_TURN_TOKENS if token in added]
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any) -> SGLangEngine:
        tokenizer = chat_tokenizer(cfg.model)
        adapter = str(cfg.model.adapter_path) if cfg.model.adapter_path else None
        runtime = sglang.Engine(
            model_path=resolve_model_path(cfg.model),
            tokenizer_path=tokenizer.name_or_path,
            dtype=cfg.model.dtype,
            revision=cfg.model.revision,
            trust_remote_code=cfg.model.trust_remote_code,
            random_seed=cfg.seed,
            lora_paths=[adapter] if adapter else None,
        )
        return cls(runtime, tokenizer, served_model_name(cfg), adapter)

    def _sampling(self, params: SamplingParams) -> dict[str, Any]:
        sampled = params.do_sample
        return {
            "temperature": params.temperature if sampled else 0.0,
            "top_p": params.top_p if sampled else 1.0,
            "top_k": params.top_k if sampled and params.top_k > 0 else -1,
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "stop": list(params.stop),
            "stop_token_ids": self._end_ids,
        }

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, n: int = 1
    ) -> list[list[Completion]]:
        repeated = [prompt for prompt in prompts for _ in range(n)]
        with self._lock:
            outputs = self.runtime.generate(
                input_ids=repeated,
                sampling_params=self._sampling(params),
                lora_path=[self._adapter] * len(repeated) if self._adapter else None,
            )
        completions = [
            Completion(
                out["text"],
                "length" if out["meta_info"]["finish_reason"]["type"] == "length" else "stop",
                out["meta_info"]["completion_tokens"],
            )
            for out in outputs
        ]
        return [completions[index * n : (index + 1) * n] for index in range(len(prompts))]

    def stream(self, prompt: list[int], params: SamplingParams) -> TextStream:
        return TextStream(whole_reply(self.generate([prompt], params)[0][0]))
