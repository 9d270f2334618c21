"""REINFORCE with an EMA baseline and clipped advantages (`docs/phases.md`, 4.1).

    baseline = EmaBaseline(decay=0.9)
    advantages = baseline.advantages(rewards, clip=2.0)     # then the baseline moves
    loss = reinforce_loss(log_pi, advantages, stale_log_pi)

L = -mean_r( w_r * A_r * log pi(sample_r) ), with A_r = clip(R_r - b, -c, c) computed before the
baseline absorbs this batch's mean reward (as the original's RLVF loop did), and w_r a truncated
importance weight min(1, pi_now / pi_drawn) (no gradient) for samples drawn from weights one
update older than those being trained (4.1 scores a batch while it draws the next); w_r is 1
for samples drawn from the current weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch


@attrs.define
class EmaBaseline:
    """b <- decay * b + (1 - decay) * mean(rewards); None until the first batch, which is its
    own baseline (so the first advantages are centred rather than all the reward's sign)."""

    decay: float = 0.9
    value: float | None = None

    def advantages(self, rewards: Sequence[float], clip: float) -> list[float]:
        """Clipped advantages of `rewards` against the current baseline; then update it."""
        mean = sum(rewards) / len(rewards)
        baseline = mean if self.value is None else self.value
        self.value = (
            mean if self.value is None else self.decay * self.value + (1 - self.decay) * mean
        )
        return [max(-clip, min(clip, reward - baseline)) for reward in rewards]


def reinforce_loss(
    logprobs: torch.Tensor,
    advantages: Sequence[float] | torch.Tensor,
    drawn_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The policy-gradient loss of a batch: `logprobs` [R] (log pi of each sample, with
    gradient), their advantages, and optionally log pi under the weights each was drawn from."""
    advantage = torch.as_tensor(advantages, dtype=logprobs.dtype, device=logprobs.device)
    weight = torch.ones_like(logprobs)
    if drawn_logprobs is not None:
        ratio = torch.exp(logprobs.detach() - drawn_logprobs.to(logprobs))
        weight = ratio.clamp(max=1.0)
    return -(weight * advantage * logprobs).mean()
