"""Sampling from the code decoder: greedy, temperature and top-p, seeded, with log-probabilities.

    from voltx_phases.models.sampling import SamplingSettings, sample
    decoded = sample(decoder, context, context_mask, SamplingSettings(temperature=0.8, top_p=0.95))
    decoded.ids[i], decoded.logprobs[i]      # row i's ids (ending in <eos> when it stopped)

The log-probability reported for a token is log softmax(logits / T) at the token, the policy
the token was drawn from before top-p truncation (T = 1 for greedy, where there is no draw).
That is what phase 4.x's REINFORCE differentiates: a teacher-forced pass over the same ids,
`teacher_forced_logprobs`, gives the same numbers and carries gradients. Top-p only decides
which tokens may be drawn; renormalising over the nucleus would make log pi depend on p and be
infinite for any token outside it, which a policy gradient cannot use.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from voltx_phases.models.decoder import DECODER_BOS_ID, CodeDecoder
from voltx_phases.models.vocabulary import EOS_ID


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value}")


def _probability(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1], not {value}")


def _non_negative_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value}")


@attrs.frozen
class SamplingSettings:
    """How tokens are chosen. `temperature` 0 is greedy (argmax); `top_p` < 1 draws only from
    the smallest set of tokens whose probabilities reach p; `max_tokens` 0 is the decoder's
    max_len."""

    temperature: float = attrs.field(default=0.0, validator=_non_negative)
    top_p: float = attrs.field(default=1.0, validator=_probability)
    max_tokens: int = attrs.field(default=0, validator=_non_negative_int)
    seed: int = 0
    use_cache: bool = True

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def policy_temperature(self) -> float:
        """The temperature of the reported log-probabilities: 1 when greedy."""
        return 1.0 if self.greedy else self.temperature


@attrs.frozen
class DecodedBatch:
    """Per row: the sampled ids (the last one `<eos>` when the row stopped; BOS left out) and
    the log-probability of each."""

    ids: list[list[int]]
    logprobs: list[list[float]]

    def stopped(self, row: int) -> bool:
        return bool(self.ids[row]) and self.ids[row][-1] == EOS_ID

    def code_ids(self, row: int) -> list[int]:
        """Row `row`'s ids without the final `<eos>`: what detokenises to code."""
        return self.ids[row][:-1] if self.stopped(row) else self.ids[row]


def choose(
    logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next ids [B] and their log-probabilities [B] from logits [B, V]."""
    logprobs = F.log_softmax(logits.float() / settings.policy_temperature, dim=-1)
    if settings.greedy:
        chosen = logprobs.argmax(dim=-1)
    else:
        probs = logprobs.exp()
        if settings.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep a token while the mass before it is below p: the top token is always kept.
            before = sorted_probs.cumsum(dim=-1) - sorted_probs
            sorted_probs = sorted_probs.masked_fill(before >= settings.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return chosen, logprobs.gather(-1, chosen[:, None]).squeeze(-1)


@torch.no_grad()
def sample(
    decoder: CodeDecoder,
    context: torch.Tensor,
    context_mask: torch.Tensor | None,
    settings: SamplingSettings,
) -> DecodedBatch:
    """Decode every row of `context` [B, S, 256] from BOS until `<eos>` or `max_tokens`.

    Draws come from one generator seeded with `settings.seed`, so equal settings and inputs give
    equal samples on the same device.
    """
    limit = decoder.shape.max_len
    if settings.max_tokens:
        limit = min(limit, settings.max_tokens)
    batch, device = context.shape[0], context.device
    generator = None
    if not settings.greedy:
        generator = torch.Generator(device=device)
        generator.manual_seed(settings.seed)
    ids = torch.full((batch, 1), DECODER_BOS_ID, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, 0), device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    cache = decoder.start_cache(context, context_mask) if settings.use_cache else None
    for _ in range(limit):
        if cache is not None:
            logits, cache = decoder.step(ids[:, -1], cache)
        else:
            logits = decoder.logits(decoder.hidden(ids, context, context_mask)[:, -1])
        chosen, chosen_logprobs = choose(logits, settings, generator)
        ids = torch.cat([ids, chosen[:, None]], dim=1)
        logprobs = torch.cat([logprobs, chosen_logprobs[:, None]], dim=1)
        # Rows that have stopped keep decoding in the batch; what they add is cut off below.
        finished |= chosen == EOS_ID
        if bool(finished.all()):
            break
    rows, row_logprobs = [], []
    for row, values in zip(ids[:, 1:].tolist(), logprobs.tolist(), strict=True):
        end = row.index(EOS_ID) + 1 if EOS_ID in row else len(row)
        rows.append(row[:end])
        row_logprobs.append(values[:end])
    return DecodedBatch(rows, row_logprobs)


def teacher_forced_logprobs(
    decoder: CodeDecoder,
    context: torch.Tensor,
    context_mask: torch.Tensor | None,
    ids: list[int],
    temperature: float = 1.0,
) -> torch.Tensor:
    """log pi of each of `ids` given the ids before it, for one context row [1, S, 256]: one full
    forward pass, differentiable (what a policy gradient needs)."""
    target = torch.tensor([ids], dtype=torch.long, device=context.device)
    inputs = torch.cat([torch.full_like(target[:, :1], DECODER_BOS_ID), target[:, :-1]], dim=1)
    logits = decoder(inputs, context, context_mask)
    logprobs = F.log_softmax(logits.float() / temperature, dim=-1)
    return logprobs.gather(-1, target[:, :, None])[0, :, 0]
