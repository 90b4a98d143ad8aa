"""The transformers backend: any device, any quantization preset, base model + adapter or merged.

Concurrent requests are batched (llmft.infer.batching): one worker thread runs generate() over
every waiting request with the same decoding settings, left-padded so each prompt continues at
its end. Each row stops at its own max_new_tokens or when its caller cancels; streamed rows get
their tokens as they are generated.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

from llmft.infer.batching import Batcher, Job
from llmft.infer.engine import Completion, Engine, SamplingParams, TextStream, served_model_name
from llmft.infer.stops import StopStringFilter, cut_at_stop
from llmft.model.loader import chat_tokenizer, load_model

# End-of-turn markers of the chat templates in llmft.data.templates (and common base-model ends):
# a named template on a base model must stop at its turn end even if the model's eos differs.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


class _RowSink:
    """One streamed reply: its tokens so far, their text for the consumer, and its cancel flag."""

    def __init__(self, tokenizer: Any, end_ids: list[int], max_new_tokens: int):
        self.text = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
        self.tokens: list[int] = []
        self.cancelled = threading.Event()
        self.row_ended = False  # its end-of-turn token or max_new_tokens came (not just the batch's end)
        self._end_ids, self._limit, self._closed = end_ids, max_new_tokens, False

    def add(self, token: int) -> None:
        if self._closed or self.cancelled.is_set():
            return self.close()
        self.tokens.append(token)
        self.text.put(torch.tensor([token]))
        if token in self._end_ids or len(self.tokens) >= self._limit:
            self.row_ended = True
            self.close()
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.text.end()


class _BatchStreamer(BaseStreamer):
    """Hands each row's new token to that row's sink (rows without one are not streamed)."""

    def __init__(self, sinks: list[_RowSink | None]):
        self.sinks = sinks
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first puts the prompts
            self._prompt_seen = True
            return
        for sink, token in zip(self.sinks, value.tolist(), strict=True):
            if sink is not None:
                sink.add(token)

    def end(self) -> None:
        for sink in self.sinks:
            if sink is not None:
                sink.close()


class _RowsDone(StoppingCriteria):
    """Per row: its own max_new_tokens reached, or its caller cancelled it (the client left, a stop string)."""

    def __init__(self, prompt_length: int, limits: list[int], sinks: list[_RowSink | None]):
        self.prompt_length, self.limits, self.sinks = prompt_length, limits, sinks

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        done = [
            generated >= limit or (sink is not None and sink.cancelled.is_set())
            for limit, sink in zip(self.limits, self.sinks, strict=True)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


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
        self._batcher = Batcher(self._generate_batch)

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

    def _inputs(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        with self._tokenizer_lock:
            batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        return {key: value.to(self.model.device) for key, value in batch.items()}

    def _generate_batch(self, jobs: list[Job]) -> list[list[list[int]]]:
        """One generate() over the jobs' prompts (the batcher grouped jobs with equal settings):
        each job's new tokens, one list per row (prompt-major, n rows per prompt)."""
        params, n = jobs[0].params, jobs[0].n
        limits = [job.params.max_new_tokens for job in jobs for _ in range(job.rows)]
        sinks = [job.sink for job in jobs for _ in range(job.rows)]
        inputs = self._inputs([prompt for job in jobs for prompt in job.prompts])
        prompt_length = inputs["input_ids"].shape[1]
        streamer = _BatchStreamer(sinks) if any(sinks) else None
        try:
            with torch.inference_mode():
                if params.seed is not None:  # a seeded job is always alone in its batch
                    torch.manual_seed(params.seed)
                output = self.model.generate(
                    **inputs,
                    generation_config=self._generation_config(params.replace(max_new_tokens=max(limits)), n),
                    tokenizer=self.tokenizer if params.stop else None,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_RowsDone(prompt_length, limits, sinks)]),
                )
        finally:
            if streamer is not None:
                streamer.end()  # no consumer waits on a row that will get no more tokens
        rows = output[:, prompt_length:].tolist()
        results, start = [], 0
        for job in jobs:
            results.append([row[: job.params.max_new_tokens] for row in rows[start : start + job.rows]])
            start += job.rows
        return results

    def _reply_tokens(self, new_tokens: list[int]) -> tuple[list[int], bool]:
        """The reply's tokens (through its end-of-turn token, if any) and whether it ended on its own."""
        for position, token in enumerate(new_tokens):
            if token in self._end_ids:
                return new_tokens[: position + 1], True
        while (
            new_tokens and new_tokens[-1] == self.tokenizer.pad_token_id
        ):  # its row stopped before the batch
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
        rows = self._batcher.submit(Job(prompts, params, n)).result()
        completions = [self._completion(tokens, params) for tokens in rows]
        return [completions[index * n : (index + 1) * n] for index in range(len(prompts))]

    def stream(self, prompt: list[int], params: SamplingParams) -> TextStream:
        sink = _RowSink(self.tokenizer, self._end_ids, params.max_new_tokens)
        return TextStream(self._stream_pieces(prompt, params, sink), cancel=sink.cancelled.set)

    def _stream_pieces(
        self, prompt: list[int], params: SamplingParams, sink: _RowSink
    ) -> Generator[str, None, Completion]:
        job = self._batcher.submit(Job([prompt], params, sink=sink))
        stops = StopStringFilter(params.stop)
        shown: list[str] = []
        try:
            for piece in sink.text:
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
        finally:  # a stop string, or the consumer leaving early: end this row (no-op once it is done)
            sink.cancelled.set()
        if not (sink.row_ended or stops.hit):
            job.result()  # the batch ended before this row did: raises the batch's error, if any
        tokens, ended = self._reply_tokens(sink.tokens)
        return Completion("".join(shown), "stop" if ended or stops.hit else "length", len(tokens))
