"""PPO for language models with LoRA (TRL 1.x has no PPOTrainer; the arithmetic is in ppo_core).

One step = one rollout batch:
1. sample a reply to each of per_device_train_batch_size prompts from the policy (the model with
   its LoRA adapter, at method.temperature, up to method.max_completion_length tokens);
2. score each reply with the reward functions and/or the reward model (rewards add up);
3. with gradients off, take the policy's log-probabilities and values and the reference's
   log-probabilities: the reference is the same model with its adapter disabled, no second copy;
4. per-token rewards = -kl_coef * KL to the reference, plus the score at the reply's last token;
   GAE advantages (gamma, lam), whitened over the batch; returns = advantages + values;
5. ppo_epochs passes of mini_batch_size minibatches: clipped surrogate + vf_coef * clipped value
   loss, one optimiser step per minibatch.
The value head is a linear layer on the policy's last hidden state, trained with the adapter.
Dropout stays off (eval mode) so the rollout's and the update's log-probabilities agree; in eval
mode transformers also skips gradient checkpointing. One process only (no torchrun workers).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import TrainerCallback, TrainerControl, TrainerState, get_scheduler

from llmft.config.run_dir import COMPLETE_MARKER, checkpoint_path, checkpoint_step
from llmft.data.prompts import build_prompt_dataset
from llmft.model.loader import chat_tokenizer, resolve_device, resolve_precision
from llmft.model.save import save_trained
from llmft.track.run_files import read_log
from llmft.track.run_log import JsonlLogCallback
from llmft.train import ppo_core
from llmft.train.components import trainable_model
from llmft.train.fit import record_metrics, resume_checkpoint
from llmft.train.rewards import build_rewards, total_rewards

log = logging.getLogger(__name__)
VALUE_HEAD_FILE = "value_head.safetensors"
STATE_FILE = COMPLETE_MARKER  # written last, so its presence marks a complete checkpoint


class ValueHead(nn.Module):
    """V(s_t): the expected return from each position, read off the policy's last hidden state."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)  # start at V = 0: no spurious advantages before any learning
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.linear(hidden.float()).squeeze(-1)


class PromptStream:
    """The prompts of each step: a fresh seeded shuffle per epoch, so a resumed run sees the same ones."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed

    def indices(self, step: int) -> list[int]:
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        orders = {epoch: self._order(epoch) for epoch in {position // self.size for position in positions}}
        return [orders[position // self.size][position % self.size] for position in positions]

    def _order(self, epoch: int) -> list[int]:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()


def run_ppo(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    method = cfg.method
    device = resolve_device(cfg.hardware)
    tokenizer = chat_tokenizer(cfg.model)
    prompts = build_prompt_dataset(cfg, tokenizer)
    rewards = build_rewards(cfg)
    model, value_head = load_policy(cfg, tokenizer, device)

    stream = PromptStream(len(prompts), method.per_device_train_batch_size, cfg.seed)
    total_steps = (
        method.max_steps
        if method.max_steps > 0
        else math.ceil(method.num_train_epochs * len(prompts) / stream.batch_size)
    )
    optimizer, scheduler = build_optimizer(method, model, value_head, total_steps)
    start_step = resume(run_dir, model, value_head, optimizer, scheduler)
    trainer = PpoTrainer(cfg, model, value_head, tokenizer, rewards, optimizer, device)

    state = TrainerState(global_step=start_step, max_steps=total_steps)
    callbacks = [JsonlLogCallback(run_dir), *callbacks]
    for callback in callbacks:
        callback.on_train_begin(None, state, TrainerControl())
    window: dict[str, list[float]] = defaultdict(list)
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(start_step + 1, total_steps + 1):
        torch.manual_seed(cfg.seed + step)  # sampling and minibatch order reproducible across resumes
        batch = prompts[stream.indices(step - 1)]
        stats = trainer.step(
            batch["prompt"], {"messages": batch["messages"], "reference": batch["reference"]}
        )
        scheduler.step()
        state.global_step = step
        state.num_input_tokens_seen += stats.pop("tokens")
        losses.append(stats["loss"])
        for key, value in stats.items():
            window[key].append(value)
        if step == 1 or step % method.logging_steps == 0 or step == total_steps:
            record = {key: sum(values) / len(values) for key, values in window.items()}
            record.update(
                learning_rate=scheduler.get_last_lr()[0], epoch=step * stream.batch_size / len(prompts)
            )
            write_log(state, record, callbacks)
            window.clear()
        if step % method.save_steps == 0 or step == total_steps:
            save_checkpoint(run_dir, step, model, value_head, optimizer, scheduler, method.save_total_limit)

    runtime = time.perf_counter() - started
    out_dir = save_trained(model, tokenizer, run_dir, method.finetuning_type)
    save_file(value_head.state_dict(), str(out_dir / VALUE_HEAD_FILE))
    return record_metrics(
        run_dir, final_metrics(run_dir, losses, runtime, state.num_input_tokens_seen), title
    )


def load_policy(cfg: DictConfig, tokenizer, device: str) -> tuple[nn.Module, ValueHead]:
    """The model with its LoRA adapter, on the device in eval mode (no dropout), and a fresh value head."""
    model = trainable_model(cfg, tokenizer)
    if cfg.quantization.method == "none":  # quantized weights are already placed
        model.to(device)
    model.eval()
    return model, ValueHead(model.config.get_text_config().hidden_size).to(device)


def build_optimizer(method: DictConfig, model, value_head: ValueHead, total_steps: int):
    """AdamW over the adapter and the value head, and the learning-rate schedule over the PPO steps."""
    trainable = [p for p in model.parameters() if p.requires_grad] + list(value_head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=method.learning_rate, weight_decay=method.weight_decay)
    warmup = method.warmup_steps if method.warmup_steps >= 1 else math.ceil(method.warmup_steps * total_steps)
    return optimizer, get_scheduler(method.lr_scheduler_type, optimizer, int(warmup), total_steps)


@dataclass
class Rollout:
    """One batch of sampled replies and what the PPO update compares against, [batch, reply length]."""

    sequences: Tensor  # prompt (left-padded) + reply token ids
    attention: Tensor
    prompt_length: int
    mask: Tensor  # 1 on reply tokens through the end-of-sequence token
    logprobs: Tensor  # the sampling policy's, fixed for all ppo_epochs
    values: Tensor
    advantages: Tensor  # whitened
    returns: Tensor
    stats: dict[str, float]


class PpoTrainer:
    """Rollouts and PPO updates for one policy (a PeftModel) and its value head."""

    def __init__(
        self, cfg: DictConfig, model, value_head: ValueHead, tokenizer, rewards, optimizer, device: str
    ):
        self.method, self.model, self.value_head, self.tokenizer = cfg.method, model, value_head, tokenizer
        self.rewards, self.optimizer, self.device = rewards, optimizer, device
        precision = resolve_precision(cfg.hardware)
        self.autocast = (
            torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
            if precision != "fp32" and device == "cuda"
            else nullcontext()
        )
        eos = {tokenizer.eos_token_id, *_as_list(model.generation_config.eos_token_id)}
        self.eos_token_ids = sorted(token for token in eos if token is not None)

    def step(self, prompts: list[str], columns: dict[str, list]) -> dict[str, float]:
        """One rollout batch and its PPO epochs; returns the step's statistics."""
        rollout = self.rollout(prompts, columns)
        return {**self.update(rollout), **rollout.stats}

    def rollout(self, prompts: list[str], columns: dict[str, list]) -> Rollout:
        """Sample, score, and fix what the update compares against: old log-probs, values, advantages."""
        queries, query_mask, responses = self.generate(prompts)
        mask = ppo_core.response_mask(responses, self.eos_token_ids)
        ended = responses.masked_fill(mask == 0, self.tokenizer.pad_token_id)
        completions = self.tokenizer.batch_decode(ended, skip_special_tokens=True)
        scores = torch.tensor(
            total_rewards(self.rewards, prompts, completions, **columns), device=self.device
        )

        sequences = torch.cat([queries, responses], 1)
        attention = torch.cat([query_mask, mask.long()], 1)
        with torch.no_grad():
            logprobs, values, _ = self.forward(sequences, attention, queries.shape[1])
        ref_logprobs = self.reference_logprobs(sequences, attention, queries.shape[1])
        rewards, kl = ppo_core.token_rewards(scores, logprobs, ref_logprobs, mask, self.method.kl_coef)
        advantages, returns = ppo_core.gae(rewards, values, mask, self.method.gamma, self.method.lam)
        stats = {
            "reward": float(scores.mean()),
            "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
            "kl": float(kl.sum(1).mean()),  # per reply, summed over its tokens
            "completion_length": float(mask.sum(1).mean()),
            "tokens": int(query_mask.sum() + mask.sum()),
        }
        return Rollout(
            sequences,
            attention,
            queries.shape[1],
            mask,
            logprobs,
            values,
            ppo_core.masked_whiten(advantages, mask),
            returns,
            stats,
        )

    def update(self, rollout: Rollout) -> dict[str, float]:
        """ppo_epochs passes over the rollout in minibatches; the mean losses and diagnostics."""
        method, stats = self.method, defaultdict(list)
        for _ in range(method.ppo_epochs):
            for index in torch.randperm(len(rollout.sequences)).split(method.mini_batch_size):
                logprobs, values, logits = self.forward(
                    rollout.sequences[index], rollout.attention[index], rollout.prompt_length
                )
                mask = rollout.mask[index]
                pg_loss, clip_fraction, approx_kl = ppo_core.policy_loss(
                    logprobs, rollout.logprobs[index], rollout.advantages[index], mask, method.cliprange
                )
                vf_loss, value_clip_fraction = ppo_core.value_loss(
                    values, rollout.values[index], rollout.returns[index], mask, method.cliprange_value
                )
                loss = pg_loss + method.vf_coef * vf_loss
                self.optimizer.zero_grad()
                loss.backward()
                parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
                nn.utils.clip_grad_norm_(parameters, method.max_grad_norm)
                self.optimizer.step()
                entropy = ppo_core.masked_mean(ppo_core.entropy(logits.detach(), method.temperature), mask)
                for key, value in (
                    ("loss", loss),
                    ("policy_loss", pg_loss),
                    ("value_loss", vf_loss),
                    ("clip_fraction", clip_fraction),
                    ("value_clip_fraction", value_clip_fraction),
                    ("approx_kl", approx_kl),
                    ("entropy", entropy),
                ):
                    stats[key].append(value.detach().item())
        return {key: sum(values) / len(values) for key, values in stats.items()}

    def generate(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded prompt ids, their attention mask, and the sampled reply ids (padded after the end)."""
        self.tokenizer.padding_side = "left"
        try:
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = "right"
        batch = batch.to(self.device)
        with torch.no_grad(), self.autocast:
            output = self.model.generate(
                **batch,
                do_sample=True,
                temperature=self.method.temperature,
                top_k=0,  # sample from the policy's whole distribution: the log-probabilities PPO uses
                top_p=1.0,
                max_new_tokens=self.method.max_completion_length,
                eos_token_id=self.eos_token_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
            )
        return batch["input_ids"], batch["attention_mask"], output[:, batch["input_ids"].shape[1] :]

    def reference_logprobs(self, sequences: Tensor, attention: Tensor, prompt_length: int) -> Tensor:
        """The reply tokens' log-probabilities under the reference policy: the base weights alone."""
        with torch.no_grad(), self.model.disable_adapter():
            return self.forward(sequences, attention, prompt_length)[0]

    def forward(
        self, sequences: Tensor, attention: Tensor, prompt_length: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probabilities of the reply tokens, the values of the states before them, and their logits."""
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        with self.autocast:
            output = self.model(
                input_ids=sequences,
                attention_mask=attention,
                position_ids=positions,
                output_hidden_states=True,
                use_cache=False,
            )
        # position t's output predicts token t + 1: the reply starts at prompt_length
        logits = output.logits[:, prompt_length - 1 : -1]
        values = self.value_head(output.hidden_states[-1][:, prompt_length - 1 : -1])
        logprobs = ppo_core.token_logprobs(logits, sequences[:, prompt_length:], self.method.temperature)
        return logprobs, values, logits


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- the run dir: log records, checkpoints, resume, metrics -----------------------------------


def write_log(state: TrainerState, record: dict[str, float], callbacks: Sequence[TrainerCallback]) -> None:
    """The logging callbacks (trainer_log.jsonl, the trackers' such as MLflow) as a Trainer would call them."""
    for callback in callbacks:
        callback.on_log(None, state, TrainerControl(), logs=dict(record))
    log.info("step %d: %s", state.global_step, ", ".join(f"{k}={v:.4g}" for k, v in record.items()))


def save_checkpoint(run_dir, step, model, value_head, optimizer, scheduler, keep: int | None) -> None:
    """checkpoints/checkpoint-<step>: adapter, value head, optimiser and schedule; the oldest beyond
    `keep` are removed."""
    directory = checkpoint_path(run_dir, step)
    model.save_pretrained(directory)
    save_file(value_head.state_dict(), str(directory / VALUE_HEAD_FILE))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, directory / "optimizer.pt"
    )
    (directory / STATE_FILE).write_text(json.dumps({"global_step": step}))
    if keep:
        older = sorted(directory.parent.glob("checkpoint-*"), key=checkpoint_step)
        for stale in older[:-keep]:
            shutil.rmtree(stale)


def resume(run_dir, model, value_head, optimizer, scheduler) -> int:
    """Load the last checkpoint of run_dir, if any; return the step it was taken at (0 for a fresh start)."""
    from peft import set_peft_model_state_dict

    checkpoint = resume_checkpoint(run_dir)
    if checkpoint is None:
        return 0
    directory = Path(checkpoint)
    set_peft_model_state_dict(model, load_file(str(directory / "adapter_model.safetensors")))
    value_head.load_state_dict(load_file(str(directory / VALUE_HEAD_FILE)))
    states = torch.load(directory / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    return json.loads((directory / STATE_FILE).read_text())["global_step"]


def final_metrics(run_dir: Path, losses: list[float], runtime: float, tokens: int) -> dict[str, float]:
    """train_loss of this session, the last logged reward and KL, runtime and throughput."""
    last = next((record for record in reversed(read_log(run_dir)) if "reward" in record), {})
    metrics = {"train_loss": sum(losses) / len(losses)} if losses else {}
    metrics.update({key: last[key] for key in ("reward", "kl") if key in last})
    metrics.update(
        train_runtime=round(runtime, 3),
        train_tokens=tokens,
        train_tokens_per_second=round(tokens / runtime, 1) if runtime else 0.0,
    )
    return metrics
