"""The stochastic policy of phases 4.x: code sampled by the frozen decoder from the reasoned
slots, with a log-probability that carries gradients back to the RAR's modules
(`docs/phases.md`, 4.1).

    states = reasoned_states(rar, query, present, settings, seed)          # with gradient
    rollout = draw(decoder, states, present, n=2, settings=..., seed=...)  # no gradient
    log_pi = sequence_logprobs(decoder, states, present, rollout, temperature)  # [R], gradient

pi(code | problem) = prod over tokens of softmax(decoder logits / T) at the token, given the
reasoned slots as the decoder's cross-attention context. The decoder's weights are frozen, so
the gradient of log pi reaches the ScaledVFN, slot attention and the diffusion controller
through the context only: through the RAR loop unrolled with gradient, exactly as 2.1 trains
it (`models/rar.rar_iteration`, t = iteration / steps, reparameterised noise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from voltx_phases.models.decoder import DECODER_BOS_ID, CodeDecoder
from voltx_phases.models.encoder import slot_context_mask
from voltx_phases.models.rar import RarModels, rar_iteration
from voltx_phases.models.sampling import SamplingSettings, sample
from voltx_phases.models.vocabulary import EOS_ID


@attrs.frozen
class PolicySettings:
    """The RAR unroll (2.1's settings) and the decoder's sampling."""

    rar_steps: int = 4
    rar_dt: float = 0.1
    rar_beta: float = 0.5
    temperature: float = 1.0
    max_tokens: int = 256


@attrs.frozen
class Rollout:
    """Sampled rows of a batch: row r is a sample of problem `problems[r]` (its position in the
    batch); `ids[r]` ends in `<eos>` when the row stopped; `logprobs[r]` is log pi of the row
    under the weights it was drawn from (a float, for the staleness correction)."""

    problems: tuple[int, ...]
    ids: tuple[tuple[int, ...], ...]
    logprobs: tuple[float, ...]

    def code_ids(self, row: int) -> list[int]:
        ids = list(self.ids[row])
        return ids[:-1] if ids and ids[-1] == EOS_ID else ids

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": list(self.problems),
            "ids": [list(row) for row in self.ids],
            "logprobs": list(self.logprobs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        return cls(
            tuple(int(p) for p in data["problems"]),
            tuple(tuple(int(i) for i in row) for row in data["ids"]),
            tuple(float(v) for v in data["logprobs"]),
        )


def reasoned_states(
    rar: RarModels,
    query: torch.Tensor,
    present: torch.Tensor,
    settings: PolicySettings,
    seed: int,
) -> torch.Tensor:
    """The RAR loop unrolled `rar_steps` times from the problem frames `query` [B, 16, 256]
    over the `present` [B, 16] slots, with gradient; the noise is a draw of a generator seeded
    with `seed`, so the states an update differentiates are the ones the samples came from."""
    generator = torch.Generator().manual_seed(seed)
    states = query
    delta = torch.zeros(present.shape, device=query.device, dtype=query.dtype)
    for iteration in range(1, settings.rar_steps + 1):
        progress = iteration / settings.rar_steps
        noise = torch.randn(states.shape, generator=generator, dtype=query.dtype)
        step = rar_iteration(
            rar,
            states,
            present,
            present,
            time=progress,
            progress=progress,
            last_delta=delta,
            noise=noise.to(query.device),
            dt=settings.rar_dt,
            beta=settings.rar_beta,
        )
        delta, states = step.delta, step.states
    return states


def draw(
    decoder: CodeDecoder,
    states: torch.Tensor,
    present: torch.Tensor,
    samples_per_problem: int,
    settings: PolicySettings,
    seed: int,
) -> Rollout:
    """`samples_per_problem` samples of each problem (rows i*n .. i*n+n-1 are problem i's)."""
    context = states.detach().repeat_interleave(samples_per_problem, dim=0)
    mask = slot_context_mask(present).repeat_interleave(samples_per_problem, dim=0)
    sampling = SamplingSettings(
        temperature=settings.temperature, max_tokens=settings.max_tokens, seed=seed
    )
    decoded = sample(decoder, context, mask, sampling)
    problems = [index for index in range(states.shape[0]) for _ in range(samples_per_problem)]
    return Rollout(
        tuple(problems),
        tuple(tuple(row) for row in decoded.ids),
        tuple(float(sum(row)) for row in decoded.logprobs),
    )


def sequence_logprobs(
    decoder: CodeDecoder,
    states: torch.Tensor,
    present: torch.Tensor,
    rows: Sequence[Sequence[int]],
    problems: Sequence[int],
    temperature: float,
) -> torch.Tensor:
    """log pi of each row [R]: the sum of its tokens' log-probabilities at `temperature`, given
    the states of problem `problems[r]`; one teacher-forced pass, differentiable in `states`.

    Rows are padded with `<eos>` after their end; causal attention keeps the padding from
    changing any earlier position, and the padded positions are masked out of the sum.
    """
    index = torch.tensor(list(problems), dtype=torch.long, device=states.device)
    context = states[index]
    mask = slot_context_mask(present)[index]
    width = max(len(row) for row in rows)
    target = torch.full((len(rows), width), EOS_ID, dtype=torch.long, device=states.device)
    valid = torch.zeros((len(rows), width), dtype=torch.bool, device=states.device)
    for number, row in enumerate(rows):
        target[number, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        valid[number, : len(row)] = True
    inputs = torch.cat([torch.full_like(target[:, :1], DECODER_BOS_ID), target[:, :-1]], dim=1)
    logits = decoder(inputs, context, mask)
    logprobs = F.log_softmax(logits.float() / temperature, dim=-1)
    chosen = logprobs.gather(-1, target[:, :, None])[:, :, 0]
    return (chosen * valid).sum(dim=1)
