"""Dynamic batching: requests that arrive while the model is busy are generated together next.

One worker thread (while there is work) owns the model. It takes the oldest waiting job and every other waiting job
that can share its generate() call (the same decoding settings), runs them as one batch, and
starts over. A job alone still runs at once; under load, each batch carries everything that
queued up during the previous one, so throughput grows with the number of concurrent clients.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from llmft.infer.engine import SamplingParams


class Job:
    """One generate() call of one caller: prompts (each to get n replies) and how to decode them."""

    def __init__(self, prompts: list[list[int]], params: SamplingParams, n: int = 1, sink: Any = None):
        self.prompts, self.params, self.n = prompts, params, n
        self.sink = sink  # where a streamed reply's tokens go as they are generated, or None
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n

    def batch_key(self) -> Hashable:
        """Jobs with equal keys can share one generate() call; max_new_tokens is cut per row instead.

        A seeded job runs alone: its draws must not depend on who else was waiting.
        """
        if self.params.seed is not None:
            return id(self)
        return (self.params.replace(max_new_tokens=0), self.n)

    def _finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()

    def result(self) -> Any:
        """Wait for the job's batch to end: its result, or the batch's error raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


class Batcher:
    """Runs submitted jobs on one worker thread, batching compatible jobs that wait together.

    The worker lives while there is work: an idle engine holds no thread (and no thread holds it).
    """

    def __init__(self, run_batch: Callable[[list[Job]], list[Any]], name: str = "llmft-batcher"):
        self._run_batch = run_batch  # generates a batch: one result per job
        self._name = name
        self._waiting: deque[Job] = deque()
        self._lock = threading.Lock()
        self._working = False

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._waiting.append(job)
            if not self._working:
                self._working = True
                threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return job

    def _next_batch(self) -> list[Job]:
        """The oldest waiting job and every waiting job that can join it, in arrival order; [] when
        nothing waits (the worker then ends)."""
        with self._lock:
            if not self._waiting:
                self._working = False
                return []
            first = self._waiting.popleft()
            key = first.batch_key()
            batch = [first] + [job for job in self._waiting if job.batch_key() == key]
            for job in batch[1:]:
                self._waiting.remove(job)
            return batch

    def _work(self) -> None:
        while batch := self._next_batch():
            try:
                results = self._run_batch(batch)
            except BaseException as error:  # noqa: BLE001 - each caller re-raises it in its own thread
                for job in batch:
                    job._finish(error=error)
            else:
                for job, result in zip(batch, results, strict=True):
                    job._finish(result)
