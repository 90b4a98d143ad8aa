"""The Train tab's fields -> Hydra overrides for `python run.py`.

Each field holds one value: anything Hydra would read as more (a second override, a sweep, an
interpolation) is refused, so text typed in the page can never redirect a run (`1e-4 hydra.run.dir=/tmp`).
Secrets never become overrides: they travel to the run as environment variables.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from llmft.config.paths import PROJECT_ROOT
from llmft.track.secrets import is_secret_key

GROUPS = ("model", "method", "dataset", "quantization", "hardware", "logger")
EXPERIMENT = "experiment"  # +experiment=<name>: a recipe from experiments/experiment/
# The common knobs: key -> label.
KNOBS = {
    "method.learning_rate": "learning rate",
    "method.num_train_epochs": "epochs",
    "method.max_steps": "max steps (> 0 wins over epochs)",
    "method.per_device_train_batch_size": "batch size per device",
    "method.gradient_accumulation_steps": "gradient accumulation",
    "method.lora_rank": "LoRA rank",
    "method.lora_alpha": "LoRA alpha",
    "method.lora_target": "LoRA targets",
    "data.cutoff_len": "cutoff length",
    "data.val_size": "validation size",
    "data.max_samples": "max samples per dataset",
    "method.logging_steps": "logging steps",
    "method.save_steps": "save steps",
    "seed": "seed",
}
EXTRA = "extra"  # the free field of further overrides
# Secrets the page may pass to a run: environment variable -> label. Never written to a file.
SECRETS = {
    "HF_TOKEN": "Hugging Face token (gated models)",
    "WANDB_API_KEY": "W&B API key",
    "MLFLOW_TRACKING_USERNAME": "MLflow server user",
    "MLFLOW_TRACKING_PASSWORD": "MLflow server password",
}
# One Hydra value: no spaces, quotes, '=', '$' or other shell/Hydra syntax ([a,b] lists are fine).
ONE_VALUE = re.compile(r"[\w.+\-/:@\[\],]+")
NAME = re.compile(r"[\w.\-]+")
KEY = re.compile(r"\+{0,2}[A-Za-z_][\w.]*")


class Refused(ValueError):
    """A field's text is not a single value for its key."""


def value_override(key: str, text: str) -> str:
    """`key=text`, checked to be exactly one override setting one value (not a sweep)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if not ONE_VALUE.fullmatch(text):
        raise Refused(
            f"{key}: {text!r} is not one value (no spaces, quotes, '=', '$' or interpolations): "
            "type just the value, e.g. 1e-4"
        )
    try:
        parsed = OverridesParser.create().parse_overrides([f"{key}={text}"])
    except OverrideParseException as error:
        raise Refused(f"{key}: {text!r} is not a valid value ({error})") from None
    if len(parsed) != 1 or parsed[0].is_sweep_override():
        raise Refused(f"{key}: {text!r} would be several values (a sweep): give one value")
    return f"{key}={text}"


def extra_overrides(text: str) -> list[str]:
    """The free field: `key=value` overrides separated by spaces; never hydra.*, flags or secrets."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise Refused(f"extra overrides: {error}") from None
    overrides = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not KEY.fullmatch(key):
            raise Refused(f"extra overrides: {word!r} is not key=value (flags such as -m are not taken)")
        if key.lstrip("+").split(".")[0] == "hydra":
            raise Refused(f"extra overrides: {key} is the board's to set (run and sweep dirs)")
        if is_secret_key(key):
            raise Refused(
                f"extra overrides: {key} looks like a secret: use the Secrets fields, which reach the run as "
                "environment variables and never its config"
            )
        overrides.append(value_override(key, value))
    return overrides


@dataclass
class Overrides:
    all: list[str]  # in command-line order
    extra: list[str]  # those typed in the extra field
    refused: dict[str, str]  # field -> why its text was refused (it is left out of `all`)


@dataclass
class TrainForm:
    """What the Train tab holds; empty fields keep the presets' values."""

    groups: dict[str, str | list[str]] = field(default_factory=dict)  # group -> option (dataset: a list)
    experiment: str = ""
    knobs: dict[str, str] = field(default_factory=dict)
    extra: str = ""

    def overrides(self) -> Overrides:
        """Every field's override, and why the refused fields were refused."""
        overrides: list[str] = []
        refused: dict[str, str] = {}
        extra: list[str] = []
        for group in GROUPS:
            chosen = self.groups.get(group)
            names = chosen if isinstance(chosen, list) else [chosen] if chosen else []
            if bad := [name for name in names if not NAME.fullmatch(str(name))]:
                refused[group] = f"{group}: {bad[0]!r} is not a config name"
            elif names:
                overrides.append(
                    f"{group}=[{','.join(names)}]" if group == "dataset" else f"{group}={names[0]}"
                )
        if self.experiment:
            if NAME.fullmatch(self.experiment):
                overrides.append(f"+{EXPERIMENT}={self.experiment}")
            else:
                refused[EXPERIMENT] = f"experiment: {self.experiment!r} is not a config name"
        for key, text in self.knobs.items():
            if text is not None and str(text).strip():
                try:
                    overrides.append(value_override(key, str(text).strip()))
                except Refused as error:
                    refused[key] = str(error)
        try:
            extra = extra_overrides(self.extra or "")
        except Refused as error:
            refused[EXTRA] = str(error)
        return Overrides([*overrides, *extra], extra, refused)


def run_py_argv(python: str, overrides: list[str], multirun: bool = False) -> list[str]:
    """The process's argument list (no shell): the interpreter, run.py, -m for Slurm, the overrides."""
    return [python, str(PROJECT_ROOT / "run.py"), *(["-m"] if multirun else []), *overrides]


def shown_command(argv: list[str]) -> str:
    """The command as a user would type it from the project root: `python run.py ...`."""
    return shlex.join(["python", "run.py", *argv[2:]])
