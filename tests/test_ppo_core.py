"""PPO's arithmetic (llmft.train.ppo_core) against hand-computed values and the paper's properties."""

from __future__ import annotations

import pytest
import torch

from llmft.train import ppo_core


def test_gae_matches_a_hand_computed_example():
    # One reply of 3 tokens, then padding. gamma = 0.9, lam = 0.5.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 7.0]])  # the padded 7.0 must be ignored
    values = torch.tensor([[0.5, 0.4, 0.8, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = ppo_core.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # deltas: d2 = 1 + 0 - 0.8 = 0.2 (the episode ends: V after the last token is 0)
    #         d1 = 0 + 0.9 * 0.8 - 0.4 = 0.32;  d0 = 0 + 0.9 * 0.4 - 0.5 = -0.14
    # A2 = 0.2; A1 = 0.32 + 0.45 * 0.2 = 0.41; A0 = -0.14 + 0.45 * 0.41 = 0.0445
    torch.testing.assert_close(advantages, torch.tensor([[0.0445, 0.41, 0.2, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.5445, 0.81, 1.0, 0.0]]))


def test_token_rewards_put_the_score_on_the_last_reply_token_and_the_kl_on_every_one():
    logprobs = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = ppo_core.token_rewards(torch.tensor([2.0, 3.0]), logprobs, ref_logprobs, mask, kl_coef=0.1)
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.0, 2.0], [0.0, 3.0, 0.0]]))


def test_kl_term_is_zero_when_the_policy_equals_the_reference():
    logits = torch.randn(2, 5, 11)
    tokens = torch.randint(0, 11, (2, 5))
    logprobs = ppo_core.token_logprobs(logits, tokens)
    mask = torch.ones(2, 5)
    rewards, kl = ppo_core.token_rewards(torch.zeros(2), logprobs, logprobs.clone(), mask, kl_coef=1.0)
    assert torch.count_nonzero(kl) == 0 and torch.count_nonzero(rewards) == 0


def surrogate_gradient(ratio: float, advantage: float, cliprange: float = 0.2) -> float:
    logprobs = torch.tensor([[torch.log(torch.tensor(ratio)).item()]], requires_grad=True)
    loss, _, _ = ppo_core.policy_loss(
        logprobs, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), cliprange
    )
    loss.backward()
    return logprobs.grad.item()


@pytest.mark.parametrize(("ratio", "advantage"), [(1.5, 1.0), (1.21, 2.0), (0.5, -1.0), (0.79, -3.0)])
def test_clipped_objective_has_no_gradient_outside_the_clip_range(ratio, advantage):
    assert surrogate_gradient(ratio, advantage) == 0.0


@pytest.mark.parametrize(("ratio", "advantage"), [(1.1, 1.0), (0.9, -1.0), (0.5, 1.0), (1.5, -1.0)])
def test_clipped_objective_keeps_the_gradient_inside_the_range_or_when_it_pulls_back(ratio, advantage):
    # inside [0.8, 1.2], or outside but on the side where the unclipped term is the pessimistic one
    assert surrogate_gradient(ratio, advantage) == pytest.approx(-advantage * ratio)


def test_clip_fraction_counts_the_clipped_tokens():
    logprobs = torch.log(torch.tensor([[1.5, 1.0, 0.5, 1.0]]))
    _, clip_fraction, _ = ppo_core.policy_loss(
        logprobs, torch.zeros(1, 4), torch.ones(1, 4), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), 0.2
    )
    assert clip_fraction.item() == pytest.approx(1 / 3)  # only ratio 1.5 with A > 0 is clipped


def value_loss_and_gradient(value: float, old_value: float = 0.0, target: float = 1.0):
    values = torch.tensor([[value]], requires_grad=True)
    loss, clip_fraction = ppo_core.value_loss(
        values, torch.tensor([[old_value]]), torch.tensor([[target]]), torch.ones(1, 1), cliprange_value=0.2
    )
    loss.backward()
    return loss.item(), values.grad.item(), clip_fraction.item()


def test_value_loss_inside_the_clip_range_is_the_squared_error():
    assert value_loss_and_gradient(0.1) == pytest.approx((0.5 * 0.9**2, 0.1 - 1.0, 0.0))


def test_value_loss_stops_moving_a_value_already_moved_past_the_clip_range():
    # 1.2 is 1.2 away from the rollout's 0: clipped to 0.2, whose error (0.8) is the larger one
    assert value_loss_and_gradient(1.2) == pytest.approx((0.5 * 0.8**2, 0.0, 1.0))


def test_value_loss_still_pulls_back_a_value_that_moved_the_wrong_way():
    # -1.0 moved away from the target: the unclipped error (2.0) dominates and keeps its gradient
    assert value_loss_and_gradient(-1.0) == pytest.approx((0.5 * 2.0**2, -2.0, 0.0))


def test_response_mask_keeps_tokens_through_the_first_end_of_sequence():
    responses = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 9, 9, 9, 9]])
    mask = ppo_core.response_mask(responses, [2])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_masked_whiten_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    whitened = ppo_core.masked_whiten(values, mask)
    assert whitened[0, 3] == 0
    assert ppo_core.masked_mean(whitened, mask).abs() < 1e-6
    assert ppo_core.masked_mean(whitened**2, mask).item() == pytest.approx(1.0, abs=1e-4)
