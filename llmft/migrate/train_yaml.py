"""A LLaMA-Factory YAML (train, predict, eval, chat or export) -> an llmft experiment (+experiment=NAME).

Its flat keys land in llmft's groups: the model and template pick a model preset, stage + finetuning_type
a method preset, `dataset` the dataset entries, quantization_bit a quantization preset, `deepspeed` a
hardware preset, `report_to` the loggers, output_dir the run directory; the rest are renamed knobs.
Where LLaMA-Factory's defaults differ from llmft's (LoRA on every linear layer, alpha = 2 x rank,
cutoff_len 2048, gradient checkpointing on), the experiment spells them out so the run trains the same.
Every other key is reported with what to do instead; none is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmft.config.errors import did_you_mean
from llmft.data.templates import template_for
from llmft.migrate.dataset_info import entry_name
from llmft.migrate.report import Report

# LLaMA-Factory key -> llmft key, same meaning and value.
RENAMES: dict[str, str] = {
    **{
        key: f"method.{key}"
        for key in (
            "lora_rank", "lora_alpha", "lora_dropout", "use_rslora", "use_dora", "pissa_init", "pissa_iter",
            "loraplus_lr_ratio", "freeze_trainable_layers", "pref_beta", "pref_ftx", "simpo_gamma",
            "reward_model", "ppo_epochs", "learning_rate", "num_train_epochs", "max_steps",
            "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
            "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "optim", "logging_steps",
            "save_steps", "save_total_limit", "eval_steps",
        )
    },
    "warmup_ratio": "method.warmup_steps",  # llmft reads a value < 1 as a fraction of all steps
    "kto_chosen_weight": "method.kto_desirable_weight",
    "kto_rejected_weight": "method.kto_undesirable_weight",
    **{
        key: f"data.{key}"
        for key in (
            "cutoff_len", "max_samples", "val_size", "train_on_prompt", "mask_history", "packing",
            "mix_strategy", "overwrite_cache",
        )
    },
    "seed": "seed",
    "model_revision": "model.revision",
    "trust_remote_code": "model.trust_remote_code",
    "infer_dtype": "model.dtype",
    "enable_liger_kernel": "model.liger_kernel",
    "quantization_type": "quantization.quant_type",
    "double_quantization": "quantization.double_quant",
    "dataloader_num_workers": "hardware.dataloader_num_workers",
    "run_name": "logger.run_name",
    **{
        key: f"generation.{key}"
        for key in ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty")
    },
    "default_system": "task.system_prompt",
    **{
        key: f"task.{key}"
        for key in ("export_dir", "export_device", "export_quantization_bit", "export_hub_model_id", "n_shot", "batch_size")
    },
}  # fmt: skip
# Comma-separated strings in LLaMA-Factory, lists in llmft.
LISTS = {
    "additional_target": "method.additional_target",
    "freeze_trainable_modules": "method.freeze_trainable_modules",
    "freeze_extra_modules": "method.freeze_extra_modules",
    "interleave_probs": "data.interleave_probs",
}
# Keys whose effect llmft has without being asked.
NATIVE = {
    "do_eval": "llmft evaluates whenever data.val_size > 0",
    "plot_loss": "every llmft run writes loss.png",
    "include_num_input_tokens_seen": "every llmft run counts tokens and reports tokens/s",
    "predict_with_generate": "task=predict always generates",
    "quantization_method": "read with quantization_bit",
    "dataset_dir": "where the datasets' registry lives (convert it with the dataset-info command)",
    "template": "read with model_name_or_path",
    "disable_gradient_checkpointing": "read as method.gradient_checkpointing",
}
_CACHE = "llmft tokenises once and caches the result under $LLMFT_CACHE"
_OPTIMIZER = "llmft trains with method.optim (any transformers optimizer name)"
_DECODING = "llmft decodes by sampling or greedily (generation.do_sample)"
# Known LLaMA-Factory keys llmft has no equivalent for, with what to do instead.
NOT_MAPPED = {
    "ddp_timeout": "llmft keeps torch's default process-group timeout",
    "overwrite_output_dir": "llmft resumes from the last checkpoint when a run dir is reused; delete the dir "
    "(or choose another hydra.run.dir) to start over",
    "resume_from_checkpoint": "rerun in the same run dir (hydra.run.dir=<dir>): llmft resumes from its last checkpoint",
    "preprocessing_num_workers": _CACHE,
    "preprocessing_batch_size": _CACHE,
    "tokenized_path": _CACHE,
    "eval_dataset": "llmft evaluates on a held-out part of the training data: data.val_size",
    "streaming": "llmft reads datasets into memory; take part of one with data.max_samples",
    "buffer_size": "llmft reads datasets into memory; take part of one with data.max_samples",
    "tool_format": "llmft renders tools in the chat template's own format (model.template)",
    "save_only_model": "llmft checkpoints keep the optimizer so a rerun resumes; lower method.save_total_limit",
    "cache_dir": "set HF_HOME (or MODELSCOPE_CACHE) to move the download cache",
    "hf_hub_token": "pass tokens through the environment (HF_TOKEN), never in a config file",
    "ms_hub_token": "pass tokens through the environment (MODELSCOPE_API_TOKEN), never in a config file",
    "use_unsloth": "no unsloth in llmft; method.gradient_checkpointing=true and quantization=bnb_4bit save memory",
    "rope_scaling": "set rope_scaling in the model's config.json",
    "use_galore": _OPTIMIZER,
    "use_badam": _OPTIMIZER,
    "use_apollo": _OPTIMIZER,
    "use_adam_mini": _OPTIMIZER,
    "use_muon": _OPTIMIZER,
    "dpo_label_smoothing": "no label smoothing in llmft's DPO; method.pref_loss=ipo is the noise-robust loss",
    "create_new_adapter": "to stack a new adapter, export the old one (task=export) and train on the export",
    "reward_model_type": "method.reward_model takes an rm run dir or a reward model directory",
    "ppo_buffer_size": "see llmft's PPO knobs: method.ppo_epochs, mini_batch_size, kl_coef, cliprange",
    "ppo_score_norm": "see llmft's PPO knobs: method.ppo_epochs, mini_batch_size, kl_coef, cliprange",
    "ppo_whiten_rewards": "see llmft's PPO knobs: method.ppo_epochs, mini_batch_size, kl_coef, cliprange",
    "ppo_target": "see llmft's PPO knobs: method.ppo_epochs, mini_batch_size, kl_coef, cliprange",
    "num_beams": _DECODING,
    "eval_num_beams": _DECODING,
    "length_penalty": _DECODING,
    "lang": "llmft's benchmark prompts are English",
    "save_dir": "task=eval writes metrics.json and benchmark_predictions.jsonl into the run dir",
    "task_dir": "task.benchmark takes mmlu or a json/jsonl file of your own",
    "export_legacy_format": "llmft exports safetensors only",
    "save_strategy": "llmft saves every method.save_steps",
    "logging_strategy": "llmft logs every method.logging_steps",
    "load_best_model_at_end": "llmft keeps the last model; sweeps pick the best run by task.objective",
    "use_fast_tokenizer": "llmft always loads the fast tokenizer",
    "low_cpu_mem_usage": "transformers 5 always loads weights lazily",
    "output_dir": "a chat or an export writes no run dir (an export goes to task.export_dir)",
}
# Keys read by their own step below (their value changes shape on the way).
SPECIAL = {
    "model_name_or_path", "stage", "finetuning_type", "dataset", "quantization_bit", "deepspeed", "fsdp",
    "bf16", "pure_bf16", "fp16", "report_to", "lora_target", "pref_loss", "adapter_name_or_path",
    "flash_attn", "infer_backend", "neat_packing", "export_size", "eval_strategy", "evaluation_strategy",
    "task", "do_train", "do_predict",
}  # fmt: skip
LOGGERS = ("mlflow", "tensorboard", "wandb", "swanlab")
FLASH_ATTN = {"auto": "sdpa", "sdpa": "sdpa", "fa2": "flash_attention_2", "disabled": "eager"}
INFER_BACKENDS = {"huggingface": "hf", "hf": "hf", "vllm": "vllm", "sglang": "sglang"}
PREF_LOSSES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")
LF_DEFAULT_CUTOFF_LEN = 2048
GROUP_ORDER = ("model", "method", "dataset", "quantization", "hardware", "logger", "task")
KNOWN = {*RENAMES, *LISTS, *NATIVE, *NOT_MAPPED, *SPECIAL}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class Experiment:
    """What the experiment file says: group choices (its defaults list) and values (dotted keys)."""

    groups: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def yaml(self, header: str) -> str:
        tree: dict[str, Any] = {}
        if self.groups:
            order = sorted(self.groups, key=GROUP_ORDER.index)
            tree["defaults"] = [{f"override /{group}": self.groups[group]} for group in order]
        for dotted, value in self.values.items():
            *parents, leaf = dotted.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return header + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def _scalar(value: Any) -> Any:
    """YAML 1.1 reads 1e-4 (no dot) as text; LLaMA-Factory's parser reads it as a number, and so do we."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and not re.search(r"[.eE]", value) else number
    return value


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [_scalar(item.strip()) for item in value.split(",") if item.strip()]
    return list(value) if isinstance(value, list | tuple) else [value]


def _presets(conf_dir: Path, group: str) -> dict[str, dict]:
    return {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for path in sorted((conf_dir / group).glob("*.yaml"))
    }


class _Migration:
    def __init__(self, lf: dict[str, Any], conf_dir: Path, dataset_conf: Path) -> None:
        self.lf, self.conf_dir, self.dataset_conf = lf, conf_dir, dataset_conf
        self.exp, self.report, self.used = Experiment(), Report(), set()
        self.task_name = "train"

    def take(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.lf.get(key, default)

    def set(self, dotted: str, value: Any, source: str, why: str = "") -> None:
        self.exp.values[dotted] = _scalar(value)
        self.report.mapped(f"{source} -> {dotted}{f' ({why})' if why else ''}")

    def group(self, group: str, option: Any, source: str) -> None:
        self.exp.groups[group] = option
        shown = f"[{','.join(option)}]" if isinstance(option, list) else option
        self.report.mapped(f"{source} -> {group}={shown}")

    def run(self) -> tuple[Experiment, Report]:
        task = self.task()
        self.model()
        if task == "train":
            self.method()
        self.datasets()
        self.quantization()
        self.hardware()
        self.loggers()
        self.special_keys()
        self.renames()
        self.leftovers()
        return self.exp, self.report

    def task(self) -> str:
        lf = self.lf
        if lf.get("export_dir"):
            task = "export"
        elif lf.get("task"):  # llamafactory-cli eval
            task = "eval"
            self.benchmark(str(self.take("task")))
        elif lf.get("do_predict") and not lf.get("do_train"):
            task = "predict"
        elif not lf.get("do_train") and not {"stage", "dataset"} & set(lf):
            task = "chat"  # an inference YAML: a model, a template, a backend
        else:
            task = "train"
        self.take("do_train"), self.take("do_predict")
        if task != "train":
            self.group("task", task, "the YAML's purpose")
        self.task_name = task
        return task

    def benchmark(self, name: str) -> None:
        benchmark, _, split = name.rpartition("_")
        if benchmark == "mmlu" and split in ("test", "validation", "dev"):
            self.set("task.benchmark", "mmlu", "task")
            self.set("task.eval_split", split, "task")
        else:
            self.report.not_mapped(
                "task", f"{name!r}: llmft runs mmlu (task.benchmark=mmlu) or a json/jsonl file of your own"
            )

    def model(self) -> None:
        name, template = self.take("model_name_or_path"), self.take("template")
        if name is None:
            self.report.not_mapped("model_name_or_path", "missing: set model.name_or_path")
            return
        try:
            wanted = template_for(template)
        except ValueError as err:
            self.report.not_mapped(
                "template", f"{err} The experiment keeps the preset's (or tokenizer's) template."
            )
            template, wanted = None, None
        presets = _presets(self.conf_dir, "model")
        exact = next((stem for stem, preset in presets.items() if preset.get("name_or_path") == name), None)
        family = next(
            (stem for stem, p in presets.items() if wanted and template_for(p.get("template")) == wanted),
            None,
        )
        preset = exact or family
        if preset is None:  # no preset knows this model: the experiment says everything itself
            self.report.note(f"no llmft model preset for {name}: the experiment sets model.* itself")
            self.set("model.name_or_path", name, "model_name_or_path")
            self.set("model.template", template, "template")
            self.exp.values.update({"model.tiny": None, "model.dtype": "auto"})
            return
        self.group("model", preset, "model_name_or_path" if exact else f"template {template}")
        if not exact:
            self.set("model.name_or_path", name, "model_name_or_path")
        if template is not None and wanted != template_for(presets[preset].get("template")):
            self.set("model.template", template, "template")
        if not self.lf.get("quantization_bit") and (match := re.search(r"gptq|awq", str(name), re.I)):
            self.group("quantization", match.group(0).lower(), "a pre-quantized checkpoint's name")

    def method(self) -> None:
        stage, ft = self.take("stage", "sft"), self.take("finetuning_type", "lora")
        if ft not in ("lora", "freeze", "full"):
            self.report.not_mapped("finetuning_type", f"{ft!r}: llmft fine-tunes with lora, freeze or full")
            ft = "lora"
        pref_loss = self.lf.get("pref_loss")
        candidates = [f"{ft}_{pref_loss}"] if stage == "dpo" and pref_loss in ("orpo", "simpo") else []
        methods = _presets(self.conf_dir, "method")
        preset = next((c for c in [*candidates, f"{ft}_{stage}", f"lora_{stage}"] if c in methods), None)
        if preset is None:
            self.report.not_mapped(
                "stage", f"{stage!r}: llmft's stages are pt, sft, rm, dpo, kto, ppo, grpo, rloo"
            )
            return
        self.group("method", preset, "stage + finetuning_type")
        if not preset.startswith(f"{ft}_"):
            self.set("method.finetuning_type", ft, "finetuning_type")
        if ft == "lora":
            target = self.take("lora_target", "all")
            self.set("method.lora_target", "all" if target == "all" else _items(target), "lora_target")
            if "lora_rank" in self.lf and "lora_alpha" not in self.lf:
                alpha = 2 * int(_scalar(self.lf["lora_rank"]))
                self.set("method.lora_alpha", alpha, "lora_rank", "LLaMA-Factory's default: 2 x lora_rank")
        checkpointing = not self.take("disable_gradient_checkpointing", False)
        self.set(
            "method.gradient_checkpointing",
            checkpointing,
            "disable_gradient_checkpointing",
            "LLaMA-Factory's default",
        )
        if "cutoff_len" not in self.lf:
            self.set("data.cutoff_len", LF_DEFAULT_CUTOFF_LEN, "cutoff_len", "LLaMA-Factory's default")

    def datasets(self) -> None:
        if "dataset" not in self.lf:
            return
        names = [entry_name(str(name)) for name in _items(self.take("dataset"))]
        self.group("dataset", names, "dataset")
        if missing := [name for name in names if not (self.dataset_conf / f"{name}.yaml").is_file()]:
            registry = Path(str(self.lf.get("dataset_dir", "data"))) / "dataset_info.json"
            self.report.note(
                f"dataset(s) {', '.join(missing)} not in {self.dataset_conf}: convert the registry first: "
                f"python -m llmft.migrate dataset-info {registry}"
            )

    def quantization(self) -> None:
        bits, method = self.take("quantization_bit"), self.lf.get("quantization_method", "bnb")
        if bits is None:
            return
        if method in ("bnb", "bitsandbytes") and int(bits) in (4, 8):
            self.group("quantization", f"bnb_{int(bits)}bit", "quantization_bit")
        else:
            self.report.not_mapped(
                "quantization_bit",
                f"{bits}-bit {method}: llmft quantizes on the fly with bitsandbytes (quantization=bnb_4bit or "
                "bnb_8bit), or loads GPTQ/AWQ checkpoints (quantization=gptq or awq)",
            )

    def hardware(self) -> None:
        if deepspeed := self.take("deepspeed"):
            self.deepspeed(str(deepspeed))
        elif self.take("fsdp"):
            self.group("hardware", "fsdp", "fsdp")
        if self.take("bf16") or self.take("pure_bf16"):
            self.set("hardware.precision", "bf16", "bf16")
        elif self.take("fp16"):
            self.set("hardware.precision", "fp16", "fp16")

    def deepspeed(self, path: str) -> None:
        """LLaMA-Factory's ds_z{0,2,3}[_offload]_config.json -> llmft's hardware preset of that ZeRO stage."""
        name = Path(path).name.lower()
        stage = re.search(r"z(?:ero)?[_-]?([0-3])", name)
        offload = "offload" in name
        if stage and stage.group(1) == "0":
            self.group("hardware", "multi_gpu", "deepspeed")
            self.report.note("ZeRO stage 0 is plain data parallelism: hardware=multi_gpu (DDP)")
            return
        preset = f"deepspeed_z{stage.group(1)}{'_offload' if offload else ''}" if stage else None
        if preset in _presets(self.conf_dir, "hardware"):
            self.group("hardware", preset, "deepspeed")
            self.report.note(
                f"llmft's shipped config for {preset} replaces {path}; keep yours with "
                f"hardware.deepspeed_config={path}"
            )
        else:
            self.group("hardware", "deepspeed_z3", "deepspeed")
            self.set("hardware.deepspeed_config", path, "deepspeed", "your config, used as it is")

    def loggers(self) -> None:
        if "report_to" not in self.lf:
            return
        targets = [str(target) for target in _items(self.take("report_to"))]
        if targets == ["none"]:
            self.group("logger", "none", "report_to")
            return
        if "all" in targets:
            targets = [t for t in targets if t != "all"] + ["mlflow", "tensorboard"]
            self.report.note("report_to: all -> llmft's built-in trackers, mlflow and tensorboard")
        for target in [t for t in targets if t not in LOGGERS]:
            self.report.not_mapped(f"report_to: {target}", f"llmft logs to {', '.join(LOGGERS)}")
        if chosen := list(dict.fromkeys(t for t in targets if t in LOGGERS)):
            self.group("logger", chosen if len(chosen) > 1 else chosen[0], "report_to")

    def special_keys(self) -> None:
        """Keys whose value changes shape on the way."""
        lf = self.lf
        if "output_dir" in lf and self.exp.groups.get("task") in (None, "predict", "eval"):
            self.set(
                "hydra.run.dir", self.take("output_dir"), "output_dir", "the run dir: adapter/, model/, logs"
            )
        if "lora_target" in lf and "method.lora_target" not in self.exp.values:
            self.set("method.lora_target", _items(self.take("lora_target")), "lora_target")
        if (loss := self.take("pref_loss")) is not None:
            if loss in PREF_LOSSES:
                self.set("method.pref_loss", loss, "pref_loss")
            else:
                self.report.not_mapped("pref_loss", f"{loss!r}: llmft's losses are {', '.join(PREF_LOSSES)}")
        if (adapters := self.take("adapter_name_or_path")) is not None:
            adapters = _items(adapters)
            if len(adapters) == 1:
                self.set("model.adapter_path", adapters[0], "adapter_name_or_path")
            else:
                self.report.not_mapped(
                    "adapter_name_or_path", "several adapters: merge all but the last (task=export) first"
                )
        self.translate("flash_attn", FLASH_ATTN, "model.attn_implementation")
        self.translate("infer_backend", INFER_BACKENDS, "generation.backend")
        if (size := self.take("export_size")) is not None:
            self.set("task.max_shard_size", f"{size}GB", "export_size", "its shards' size in GB")
        if self.take("neat_packing"):
            self.set("data.packing", True, "neat_packing", "llmft's packing never attends across samples")
        strategy = self.take("eval_strategy", self.take("evaluation_strategy"))
        if strategy not in (None, "no", "steps"):
            self.report.not_mapped(
                "eval_strategy", f"{strategy!r}: llmft evaluates every method.eval_steps steps"
            )

    def translate(self, key: str, table: dict[str, str], target: str) -> None:
        """A value llmft spells differently (flash_attn: fa2 -> flash_attention_2)."""
        if (value := self.take(key)) is None:
            return
        if value in table:
            self.set(target, table[value], key)
        else:
            self.report.not_mapped(key, f"{value!r}: llmft knows {', '.join(table)} (see {target})")

    def renames(self) -> None:
        for key, target in RENAMES.items():
            if key in self.lf and key not in self.used:
                self.set(target, self.take(key), key)
        for key, target in LISTS.items():
            if key in self.lf:
                self.set(target, _items(self.take(key)), key)
        for key, why in NATIVE.items():
            if key in self.lf and key not in self.used:
                self.used.add(key)
                self.report.mapped(f"{key}: {why}")

    def leftovers(self) -> None:
        for key in self.lf:
            if key in self.used:
                continue
            if key in NOT_MAPPED:
                self.report.not_mapped(key, NOT_MAPPED[key])
            elif key in KNOWN:  # e.g. stage in a predict YAML
                self.report.not_mapped(key, f"has no effect on task={self.task_name}")
            else:
                hint = did_you_mean(key, sorted(KNOWN))
                self.report.not_mapped(
                    key, f"not a LLaMA-Factory key llmft knows.{hint} The experiment omits it"
                )


def convert_train_yaml(lf: dict[str, Any], conf_dir: Path, dataset_conf: Path) -> tuple[Experiment, Report]:
    """The experiment for one LLaMA-Factory YAML's keys, and the report of what did not carry over.

    A key set to null asks for LLaMA-Factory's default, which is what leaving it out asks of llmft.
    """
    given = {key: value for key, value in lf.items() if value is not None}
    return _Migration(given, conf_dir, dataset_conf).run()


def migrate_file(source: Path, target: Path, conf_dir: Path, dataset_conf: Path, force: bool) -> Report:
    """Read a LLaMA-Factory YAML, write the experiment to target (experiments/experiment/NAME.yaml)."""
    try:
        lf = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read {source} as YAML: {err}") from None
    if not isinstance(lf, dict):
        raise ValueError(f"{source} holds no LLaMA-Factory settings: expected a mapping of keys.")
    if target.exists() and not force:
        raise ValueError(f"{target} exists: pass --force to replace it, or --out another file.")
    experiment, report = convert_train_yaml(lf, conf_dir, dataset_conf)
    name = target.stem
    header = (
        "# @package _global_\n"
        f"# Migrated from LLaMA-Factory's {source} by python -m llmft.migrate train-yaml.\n"
        f"#   python run.py +experiment={name}\n"
        f"#   python run.py +experiment={name} --cfg job     # the composed config, nothing trained\n"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(experiment.yaml(header), encoding="utf-8")
    return report
