"""The transformers backend: any device, any quantization preset, base model + adapter or merged.

Batches are left-padded (generation continues every prompt at its end); streaming runs
generate() in a thread feeding a TextIteratorStreamer. One lock serialises generation, so
concurrent callers are queued, never mixed.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from llmft.infer.engine import Completion, Engine, SamplingParams, TextStream, served_model_name
from llmft.infer.stops import StopStringFilter, cut_at_stop
from llmft.model.loader import load_model
from llmft.train.components import chat_tokenizer

# End-of-turn markers of the chat templates in llmft.data.templates (and common base-model ends):
# a named template on a base model must stop at its turn end even if the model's eos differs.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def end_token_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: set[int] = set()
    model_eos = model.generation_config.eos_token_id
    ids.update(model_eos if isinstance(model_eos, list) else [model_eos] if model_eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    added = tokenizer.get_added_vocab()
    ids.update(added[token] for token in END_OF_TURN_TOKENS if token in added)
    return sorted(ids)


def context_length(model: Any, tokenizer: Any) -> int:
    """Tokens the model can attend to; a tokenizer's huge placeholder max length is ignored."""
    lengths = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min(length for length in lengths if length and length < 10**8)


class HFEngine(Engine):
    def __init__(self, model: Any, tokenizer: Any, model_name: str):
        super().__init__(tokenizer, model_name, context_length(model, tokenizer))
        self.model = model
        self._end_ids = end_token_ids(tokenizer, model)
        self._generate_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any) -> HFEngine:
        tokenizer = chat_tokenizer(cfg.model)
        tokenizer.padding_side = "left"
        model = load_model(cfg, tokenizer, for_training=False)
        return cls(model, tokenizer, served_model_name(cfg))

    def _generation_config(self, params: SamplingParams, n: int) -> GenerationConfig:
        settings: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": params.do_sample,
            "num_return_sequences": n,
            "repetition_penalty": params.repetition_penalty,
            "eos_token_id": self._end_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.do_sample:
            settings.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        if params.stop:
            settings["stop_strings"] = list(params.stop)
        return GenerationConfig(**settings)

    def _run_generate(
        self, inputs: dict[str, torch.Tensor], params: SamplingParams, n: int, **extra: Any
    ) -> torch.Tensor:
        with self._generate_lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            return self.model.generate(
                **inputs,
                generation_config=self._generation_config(params, n),
                tokenizer=self.tokenizer if params.stop else None,
                **extra,
            )

    def _inputs(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        with self._tokenizer_lock:
            batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        return {key: value.to(self.model.device) for key, value in batch.items()}

    def _reply_tokens(self, new_tokens: list[int]) -> tuple[list[int], bool]:
        """The reply's tokens (through its end-of-turn token, if any) and whether it ended on its own."""
        for position, token in enumerate(new_tokens):
            if token in self._end_ids:
                return new_tokens[: position + 1], True
        while new_tokens and new_tokens[-1] == self.tokenizer.pad_token_id:  # stopped early by a stop string
            new_tokens = new_tokens[:-1]
        return new_tokens, False

    def _completion(self, new_tokens: list[int], params: SamplingParams) -> Completion:
        tokens, ended = self._reply_tokens(new_tokens)
        with self._tokenizer_lock:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, params.stop)
        return Completion(text, "stop" if ended or stopped else "length", len(tokens))

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, n: int = 1
    ) -> list[list[Completion]]:
        if n > 1 and not params.do_sample:  # greedy replies are all the same: generate one, copy it
            return [replies * n for replies in self.generate(prompts, params, 1)]
        inputs = self._inputs(prompts)
        output = self._run_generate(inputs, params, n)
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
        completions = [self._completion(tokens, params) for tokens in new_tokens]
        return [completions[index * n : (index + 1) * n] for index in range(len(prompts))]

    def stream(self, prompt: list[int], params: SamplingParams) -> TextStream:
        cancelled = threading.Event()
        return TextStream(self._stream_pieces(prompt, params, cancelled), cancel=cancelled.set)

    def _stream_pieces(
        self, prompt: list[int], params: SamplingParams, cancelled: threading.Event
    ) -> Generator[str, None, Completion]:
        inputs = self._inputs([prompt])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["output"] = self._run_generate(
                    inputs,
                    params,
                    1,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancelled(cancelled)]),
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread below
                result["error"] = exc
                streamer.end()  # unblock the consumer

        worker = threading.Thread(target=run, name="llmft-generate", daemon=True)
        worker.start()
        stops = StopStringFilter(params.stop)
        shown: list[str] = []
        try:
            for piece in streamer:
                text = stops.feed(piece)
                if text:
                    shown.append(text)
                    yield text
                if stops.hit:
                    break
            tail = "" if stops.hit else stops.flush()
            if tail:
                shown.append(tail)
                yield tail
        finally:  # a stop string, or the consumer leaving early: end generation (no-op once it is done)
            cancelled.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        tokens, ended = self._reply_tokens(result["output"][0, inputs["input_ids"].shape[1] :].tolist())
        return Completion("".join(shown), "stop" if ended or stops.hit else "length", len(tokens))
