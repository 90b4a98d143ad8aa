"""The arithmetic of PPO for language models, on padded [batch, response_length] tensors.

Written from Schulman et al. 2017 (PPO: clipped surrogate, GAE from Schulman et al. 2016),
Ouyang et al. 2022 (InstructGPT: per-token KL penalty to the reference policy, reward at the
end) and Huang et al. 2024 ("The N Implementation Details of RLHF with PPO": value clipping,
whitened advantages, masked means over response tokens). `mask` is 1 on response tokens (through
the first end-of-sequence token) and 0 on the padding after them. No model code here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the unmasked entries (masked ones end up 0)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + eps) * mask


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """log pi(token) under logits [batch, length, vocab] scaled by the sampling temperature."""
    logprobs = F.log_softmax(logits.float() / temperature, dim=-1)
    return logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of each position's sampling distribution, [batch, length]."""
    logprobs = F.log_softmax(logits.float() / temperature, dim=-1)
    return -(logprobs.exp() * logprobs).sum(-1)


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token KL(pi || pi_ref) estimate on sampled tokens: log pi - log pi_ref (unbiased, "k1")."""
    return logprobs - ref_logprobs


def token_rewards(
    scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, kl_coef: float
) -> tuple[Tensor, Tensor]:
    """Per-token rewards: -kl_coef * KL at every response token, plus the sequence score at its last one.

    Returns (rewards, kl), both [batch, length] and zero on padding.
    """
    kl = kl_estimate(logprobs, ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns (advantages + values), [batch, length].

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}; the value after
    the last response token is 0 (the episode ends there), so padding never leaks in.
    """
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, cliprange: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The clipped surrogate objective, negated for minimisation: mean of max(-A r, -A clip(r, 1±eps)).

    Returns (loss, clip fraction, approximate KL to the sampling policy).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(0.5 * log_ratio.detach() ** 2, mask)
    return loss, clip_fraction, approx_kl


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange_value: float
) -> tuple[Tensor, Tensor]:
    """Clipped value loss: 0.5 * mean of max((V - R)^2, (V_clipped - R)^2), V_clipped within ±eps of
    the rollout's values. Returns (loss, clip fraction)."""
    clipped_values = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return loss, clip_fraction


def response_mask(responses: Tensor, eos_token_id: int | list[int] | None) -> Tensor:
    """1 on every response token through the first end-of-sequence token, 0 after it."""
    if eos_token_id is None:
        return torch.ones_like(responses, dtype=torch.float)
    eos_ids = torch.tensor(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id])
    is_eos = torch.isin(responses, eos_ids.to(responses.device))
    ended_before = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    return (~ended_before).float()
