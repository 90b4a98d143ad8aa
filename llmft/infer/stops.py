"""Stop strings: the reply ends before the first one, and streams never show part of one."""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    found = [index for stop in stops if (index := text.find(stop)) >= 0]
    return (text[: min(found)], True) if found else (text, False)


class StopStringFilter:
    """Passes streamed text through, holding back a tail that could be the start of a stop string."""

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(stops)
        self._pending = ""
        self.hit = False

    def feed(self, piece: str) -> str:
        """The text now safe to show; after a stop string is seen, `hit` is True and nothing follows."""
        if self.hit:
            return ""
        self._pending += piece
        text, self.hit = cut_at_stop(self._pending, self._stops)
        if self.hit:
            self._pending = ""
            return text
        held = self._possible_stop_start(self._pending)
        ready, self._pending = (
            self._pending[: len(self._pending) - held],
            self._pending[len(self._pending) - held :],
        )
        return ready

    def flush(self) -> str:
        """The held-back tail, once the reply ended without completing a stop string."""
        text, self._pending = self._pending, ""
        return text

    def _possible_stop_start(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
