"""What generating code with a trained model takes and gives: the types of `voltx.generate`.

A plugin registers a generator (`GeneratorSpec`, through the `register_generators` hook) that
names the artifacts its model is made of and its entry as "module:function"; voltx calls the
entry with a `GenerationRequest` and gets a `ProblemSamples` per prompt back
(`voltx.generate_code` does the calling; docs/plugins.md, `register_generators`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from voltx.errors import GenerationError


@attrs.frozen
class ConfidenceSignals:
    """Raw, uncalibrated signals of how much to trust a sample (phase 3.2 calibrates them).

    - `min_slot_gamma`: the lowest certainty gamma over the prompt frame's filled slots (a
      role's summed probability over the prompt's tokens, at most 1);
    - `rar_iterations`: iterations the reasoning loop ran (its budget when it did not converge);
    - `rar_converged_slots` of `rar_active_slots`: slots whose last step fell below epsilon;
    - `rar_max_final_delta`: the largest last step of any slot;
    - `mean_token_logprob`: the mean log-probability of the sample's tokens (its `<eos>`
      included when it stopped).
    """

    min_slot_gamma: float
    rar_iterations: int
    rar_converged_slots: int
    rar_active_slots: int
    rar_max_final_delta: float
    mean_token_logprob: float

    @property
    def confidence(self) -> float:
        """One number to sort by: min gamma times the geometric mean token probability.

        A heuristic in [0, 1], not a probability of passing: calibration is phase 3.2's."""
        return self.min_slot_gamma * math.exp(self.mean_token_logprob)


@attrs.frozen
class GeneratedSample:
    """One code sample. `token_ids` end with `<eos>` (id 3) when the sample stopped there;
    `token_logprobs` has one log-probability per id."""

    code: str
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    stopped: bool
    signals: ConfidenceSignals
    # The probability that the sample passes its tests, from a calibration the store holds
    # (phase 3.2's `gamma_calibration`); None without one.
    calibrated_confidence: float | None = None

    @property
    def confidence(self) -> float:
        return self.signals.confidence


@attrs.frozen
class HardCoreReport:
    """What the hard core read in a prompt's reasoned frame (docs/phases.md, "Inference").

    - `strand`: the strand the router activated, None when no strand reached its threshold
      (or the frame has no filled slot);
    - `global_gamma`: the certainty engine's gamma, the least gamma of the filled slots;
    - `safety_level`: "pass", "warning" or "halt";
    - `violated_axioms`: the names of the axioms some slot violates, in axiom order.
    """

    strand: str | None
    global_gamma: float
    safety_level: str
    violated_axioms: tuple[str, ...] = ()


@attrs.frozen
class ProblemSamples:
    """A prompt's samples, with what reasoning did on its frame (per slot, 16 each) and what the
    hard core read in it (None from a generator without one)."""

    prompt: str
    samples: tuple[GeneratedSample, ...]
    rar_iterations: int
    converged: tuple[bool, ...]
    final_deltas: tuple[float, ...]
    slot_gamma: tuple[float, ...]
    hard_core: HardCoreReport | None = None


def _at_least(minimum: float) -> Callable[[Any, Any, float], None]:
    def check(_instance: Any, attribute: Any, value: float) -> None:
        if value < minimum:
            raise GenerationError(f"{attribute.name} must be >= {minimum}, not {value}")

    return check


def _top_p(_instance: Any, _attribute: Any, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise GenerationError(f"top_p must be in (0, 1], not {value}")


@attrs.frozen
class GenerationRequest:
    """What a generator's entry is called with. `artifacts` maps each artifact the generator
    requires to a local file or folder; `digests` says which versions those are.

    `temperature` 0 is greedy; `max_tokens` 0 is the decoder's own limit; `max_iterations` is
    the reasoning loop's budget.
    """

    prompts: tuple[str, ...]
    artifacts: Mapping[str, Path]
    digests: Mapping[str, str]
    n: int = attrs.field(default=1, validator=_at_least(1))
    temperature: float = attrs.field(default=0.8, validator=_at_least(0.0))
    top_p: float = attrs.field(default=0.95, validator=_top_p)
    max_tokens: int = attrs.field(default=0, validator=_at_least(0))
    max_iterations: int = attrs.field(default=50, validator=_at_least(1))
    seed: int = 0
    device: str = "auto"


GeneratorEntry = Callable[[GenerationRequest], Sequence[ProblemSamples]]


@attrs.frozen
class GeneratorSpec:
    """A model that writes code, as a plugin declares it: the artifacts it is loaded from, and
    its entry ("module:function", imported only when used, or the function itself).

    `optional` artifacts are passed to the entry when the store has them (calibrations a later
    phase makes) and left out when it does not."""

    name: str
    requires: tuple[str, ...]
    entry: str | GeneratorEntry = attrs.field(eq=False)
    description: str = ""
    optional: tuple[str, ...] = ()
