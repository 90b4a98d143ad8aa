"""Reward functions for online RL (ppo, grpo, rloo), and how `method.reward_funcs` names them.

A reward function is any callable `f(prompts, completions, **columns) -> list[float]` (TRL's
convention): prompts and completions are strings, and the prompt dataset's other columns
(`messages`, `reference`; see llmft.data.prompts) arrive as keyword lists. Rewards of several
functions add up.

`method.reward_funcs` lists them, each either
- the name of a built-in below (`match_reference`), with its default settings, or
- a Hydra spec: `{_target_: llmft.train.rewards.Contains, text: "yes"}`, or any importable
  `_target_` of your own: a class (instantiated with the other keys, its instances called) or a
  function (called with the other keys as extra keyword arguments).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

RewardFunc = Callable[..., list[float]]


class Reward:
    """Base of the built-ins: TRL names a reward function's logged column after its __name__."""

    @property
    def __name__(self) -> str:
        return type(self).__name__

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [self.score(completion, **self._row(columns, i)) for i, completion in enumerate(completions)]

    @staticmethod
    def _row(columns: dict[str, Any], index: int) -> dict[str, Any]:
        return {key: values[index] for key, values in columns.items() if isinstance(values, list)}

    def score(self, completion: str, **row: Any) -> float:
        raise NotImplementedError


class Contains(Reward):
    """How often `text` occurs in the reply, up to max_count, scaled to [0, 1] (max_count=1: 0 or 1)."""

    def __init__(self, text: str, max_count: int = 1, ignore_case: bool = False) -> None:
        if not text or max_count < 1:
            raise ValueError(f"Contains needs a non-empty text and max_count >= 1, got {text!r}, {max_count}")
        self.text, self.max_count, self.ignore_case = text, max_count, ignore_case

    @property
    def __name__(self) -> str:  # several Contains rewards log apart
        return f"Contains[{self.text}]"

    def score(self, completion: str, **row: Any) -> float:
        haystack, needle = (
            (completion.lower(), self.text.lower()) if self.ignore_case else (completion, self.text)
        )
        return min(haystack.count(needle), self.max_count) / self.max_count


class LengthInRange(Reward):
    """1 for a reply of min_chars..max_chars characters, falling linearly to 0 a range's width outside."""

    def __init__(self, min_chars: int = 1, max_chars: int = 200) -> None:
        if not 0 <= min_chars <= max_chars:
            raise ValueError(f"LengthInRange needs 0 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
        self.min_chars, self.max_chars = min_chars, max_chars

    def score(self, completion: str, **row: Any) -> float:
        length = len(completion.strip())
        distance = max(self.min_chars - length, length - self.max_chars, 0)
        return max(0.0, 1.0 - distance / max(self.max_chars - self.min_chars, 1))


class MatchesReference(Reward):
    """1 for the dataset's reply exactly (spaces and case aside), else the F1 of shared words (partial)."""

    def __init__(self, partial: bool = True) -> None:
        self.partial = partial

    def score(self, completion: str, reference: str = "", **row: Any) -> float:
        got, want = _words(completion), _words(reference)
        if got == want:
            return 1.0
        if not self.partial or not got or not want:
            return 0.0
        common = sum(min(got.count(word), want.count(word)) for word in set(got))
        if not common:
            return 0.0
        precision, recall = common / len(got), common / len(want)
        return 2 * precision * recall / (precision + recall)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class RewardModel(Reward):
    """A trained reward model scoring prompt turns + reply, rendered with the reward model's own chat
    template (llmft.model.reward, as task=serve scores)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    @classmethod
    def load(cls, cfg: DictConfig) -> RewardModel:
        """method.reward_model (an rm run dir or a reward model directory), unquantized, on the run's
        hardware in the policy's dtype."""
        from llmft.model.reward import RewardScorer, reward_model_config

        reward_cfg = OmegaConf.merge(cfg, {"quantization": {"method": "none"}})
        reward_cfg.model = reward_model_config(cfg.method.reward_model, dtype=cfg.model.dtype)
        return cls(RewardScorer.load(reward_cfg))

    def __call__(
        self, prompts: list[str], completions: list[str], messages: list, **columns: Any
    ) -> list[float]:
        conversations = [
            [*turns, {"role": "assistant", "content": completion}]
            for turns, completion in zip(messages, completions, strict=True)
        ]
        return self.scorer.score(conversations)[0]


BUILTINS: dict[str, Callable[[], RewardFunc]] = {
    "match_reference": MatchesReference,
    "length_in_range": LengthInRange,
}


def build_reward_funcs(specs: Sequence[Any]) -> list[RewardFunc]:
    """The callables `method.reward_funcs` names (built-in names or Hydra `_target_` specs)."""
    funcs = []
    for position, spec in enumerate(specs):
        where = f"method.reward_funcs[{position}]"
        if isinstance(spec, str):
            if spec not in BUILTINS:
                raise ValueError(
                    f"{where}={spec!r} is not a built-in reward ({', '.join(BUILTINS)}); give a Hydra spec "
                    "instead, e.g. {_target_: llmft.train.rewards.Contains, text: 'yes'}."
                )
            funcs.append(BUILTINS[spec]())
            continue
        if not isinstance(spec, dict | DictConfig) or "_target_" not in spec:
            raise ValueError(f"{where} must be a built-in name or a mapping with _target_, got {spec!r}")
        func = _from_spec(OmegaConf.create(spec) if isinstance(spec, dict) else spec)
        if not callable(func):
            raise ValueError(f"{where}: {spec['_target_']} built {func!r}, which is not callable")
        funcs.append(func)
    return funcs


def _from_spec(spec: DictConfig) -> RewardFunc:
    """A class is instantiated with the spec's arguments; a function is bound to them (keeping its name)."""
    from hydra.utils import get_object, instantiate

    target = get_object(spec._target_)
    if not inspect.isfunction(target):
        return instantiate(spec, _convert_="all")
    arguments = {key: value for key, value in OmegaConf.to_container(spec).items() if key != "_target_"}
    return functools.update_wrapper(functools.partial(target, **arguments), target) if arguments else target


def build_rewards(cfg: DictConfig) -> list[RewardFunc]:
    """Every reward cfg.method names: its reward functions, then its reward model (when set)."""
    funcs = build_reward_funcs(cfg.method.reward_funcs)
    if cfg.method.reward_model:
        funcs.append(RewardModel.load(cfg))
    return funcs


def total_rewards(
    funcs: Sequence[RewardFunc], prompts: list[str], completions: list[str], **columns
) -> list[float]:
    """The sum of every function's reward per completion (None, TRL's 'not applicable', counts 0)."""
    totals = [0.0] * len(completions)
    for func in funcs:
        for index, value in enumerate(func(prompts=prompts, completions=completions, **columns)):
            totals[index] += float(value or 0.0)
    return totals
