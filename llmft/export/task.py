"""task=export: merge the adapter into its base, save it sharded with tokenizer, generation config and
an Ollama Modelfile; optionally GPTQ-quantize it and push it to the hub."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from llmft.export.gptq import calibration_texts, check_gptq_device, gptq_quantize
from llmft.export.merge import load_merged
from llmft.export.ollama import write_modelfile
from llmft.export.save import save_export
from llmft.model.loader import is_reward_model

log = logging.getLogger(__name__)


def push_to_hub(export_dir: Path, repo_id: str) -> str:
    """Upload the export directory to a private hub repo (created if missing); token: env HF_TOKEN, else
    the one `hf auth login` stored."""
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, private=True, exist_ok=True)
    api.upload_folder(folder_path=str(export_dir), repo_id=repo_id, commit_message="Upload llmft export")
    return f"https://huggingface.co/{repo_id}"


def export(cfg: DictConfig, run_dir: Path) -> None:
    task = cfg.task
    export_dir = Path(task.export_dir)
    bits = task.export_quantization_bit
    if bits is not None:
        if is_reward_model(cfg.model):
            raise ValueError(
                "task.export_quantization_bit quantizes chat models; export a reward model without it"
            )
        check_gptq_device()  # before the merge, which can take minutes
    model, tokenizer = load_merged(cfg)
    merged_dir = Path(run_dir) / "merged" if bits is not None else export_dir
    save_export(model, tokenizer, merged_dir, task.max_shard_size, cfg.generation)
    if bits is not None:
        del model
        gptq_quantize(
            merged_dir, export_dir, bits, tokenizer, calibration_texts(cfg, tokenizer), task.max_shard_size
        )
        print(
            "Ollama cannot import GPTQ weights: no Modelfile written (export without quantization for Ollama)."
        )
    elif is_reward_model(cfg.model):
        print("A reward model does not chat: no Ollama Modelfile written.")
    else:
        write_modelfile(export_dir, tokenizer, cfg.generation, task.system_prompt)
    print(f"Exported to {export_dir.resolve()}", flush=True)
    if task.export_hub_model_id:
        print(f"Pushed to {push_to_hub(export_dir, task.export_hub_model_id)}", flush=True)
