"""The vLLM backend (CUDA GPUs): fast batched generation, LoRA adapters served unmerged.

vLLM's offline engine returns whole replies, so its stream is one piece; token-by-token
streaming is the hf backend's.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from vllm import LLM
from vllm import SamplingParams as VLLMSamplingParams
from vllm.inputs import TokensPrompt
from vllm.lora.request import LoRARequest

from llmft.infer.engine import Completion, Engine, SamplingParams, TextStream, served_model_name, whole_reply
from llmft.infer.hf_engine import END_OF_TURN_TOKENS
from llmft.model.loader import chat_tokenizer, resolve_model_path


def _adapter_rank(adapter_path: str) -> int:
    return int(json.loads((Path(adapter_path) / "adapter_config.json").read_text())["r"])


class VLLMEngine(Engine):
    def __init__(self, llm: Any, tokenizer: Any, model_name: str, lora: Any | None):
        super().__init__(tokenizer, model_name, llm.llm_engine.model_config.max_model_len)
        self.llm = llm
        self._lora = lora
        added = tokenizer.get_added_vocab()
        self._end_ids = [added[token] for token in END_OF_TURN_TOKENS if token in added]
        self._lock = threading.Lock()  # the offline LLM is not thread-safe

    @classmethod
    def from_config(cls, cfg: Any) -> VLLMEngine:
        tokenizer = chat_tokenizer(cfg.model)
        adapter = cfg.model.adapter_path
        extra: dict[str, Any] = (
            {"enable_lora": True, "max_lora_rank": _adapter_rank(adapter)} if adapter else {}
        )
        llm = LLM(
            model=resolve_model_path(cfg.model),
            tokenizer=tokenizer.name_or_path,
            dtype=cfg.model.dtype,
            revision=cfg.model.revision,
            trust_remote_code=cfg.model.trust_remote_code,
            seed=cfg.seed,
            **extra,
        )
        lora = LoRARequest("adapter", 1, str(adapter)) if adapter else None
        return cls(llm, tokenizer, served_model_name(cfg), lora)

    def _sampling(self, params: SamplingParams, n: int) -> Any:
        sampled = params.do_sample
        return VLLMSamplingParams(
            n=n,
            temperature=params.temperature if sampled else 0.0,
            top_p=params.top_p if sampled else 1.0,
            top_k=params.top_k if sampled and params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            repetition_penalty=params.repetition_penalty,
            stop=list(params.stop),
            stop_token_ids=self._end_ids,
            seed=params.seed,
        )

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, n: int = 1
    ) -> list[list[Completion]]:
        with self._lock:
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=prompt) for prompt in prompts],
                self._sampling(params, n),
                lora_request=self._lora,
                use_tqdm=False,
            )
        return [
            [
                Completion(
                    out.text, "length" if out.finish_reason == "length" else "stop", len(out.token_ids)
                )
                for out in request.outputs
            ]
            for request in outputs
        ]

    def stream(self, prompt: list[int], params: SamplingParams) -> TextStream:
        return TextStream(whole_reply(self.generate([prompt], params)[0][0]))
