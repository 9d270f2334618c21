"""The Volt X model at inference: problem text -> frame -> RAR -> decoder -> code samples.

    from voltx_phases.models.inference import VoltModel
    model = VoltModel.from_artifacts({"code_tokenizer": path, "code_encoder": path, ...})
    problems = model.generate(["Write a function that returns the sum of a list"], n=4)
    problems[0].samples[0].code, problems[0].samples[0].confidence

Batched over problems (and over the `n` samples of each), on CPU or GPU. The steps
(docs/phases.md, "Inference"):

1. **encode**: the frozen encoder's role aggregation, as phase 2.0 encodes problems, with the
   certainty gamma of each slot (its role's summed probability, at most 1);
2. **reason**: the RAR loop of phase 2.1 (`rar_iteration`, the same code training unrolls) until
   every slot's step is below `epsilon` (1e-3) or the budget (50 iterations) is spent; a slot
   that converged stops moving but still serves as a key and value of slot attention; noise is
   sigma (the learned controller) times a seeded Gaussian draw;
3. **decode**: the decoder reads the 16 reasoned slot vectors (empty slots masked) and samples
   `n` continuations per problem (`models/sampling.py`), each with its log-probabilities.

Each sample carries raw confidence signals (`voltx.ConfidenceSignals`): the minimum slot gamma,
the RAR's iterations, converged slots and largest final step, the mean token log-probability.
They are uncalibrated; phase 3.2 fits them to the pass rate of the code's tests. Each problem
also carries the hard core's reading of its reasoned frame (`voltx.HardCoreReport`: the strand
routed to, the global gamma, the safety verdict), read from the trace decoding used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs
import numpy as np
import torch
from tokenizers import Tokenizer

from voltx.generation import ConfidenceSignals, GeneratedSample, HardCoreReport, ProblemSamples
from voltx_phases._common.artifact_files import locate
from voltx_phases._common.devices import resolve_device
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.pipeline import HardCoreReading, read_batch
from voltx_phases.hard_core.safety import Axiom, default_axioms
from voltx_phases.hard_core.strands import Strand
from voltx_phases.models.decoder import CodeDecoder
from voltx_phases.models.encoder import (
    CodeEncoder,
    SlotFrames,
    encode_frames,
    slot_context_mask,
)
from voltx_phases.models.loading import (
    load_attention_bias,
    load_decoder,
    load_diffusion_controller,
    load_encoder,
    load_scaled_vfn,
    load_slot_attention,
)
from voltx_phases.models.rar import RarModels, rar_iteration
from voltx_phases.models.sampling import DecodedBatch, SamplingSettings, sample
from voltx_phases.translator.checks import TOKENIZER_FILE, check_tokenizer_file

# The artifacts a VoltModel is made of (phases 1.1, 1.2, 2.1 and 0.4 write them).
ARTIFACTS = VOLT_X_ARTIFACTS
MAX_PROMPT_TOKENS = 512  # the encoder's limit at phase 2.0, and the original's translator's

TimeSchedule = Literal["euler", "budget", "zero"]


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, not {value}")


def _positive_float(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value}")


@attrs.frozen
class ReasoningSettings:
    """The RAR loop at inference. `dt` and `beta` are phase 2.1's (`rar_dt`, `rar_beta`).

    `time_schedule` is the VFN's t at iteration k (1-based): ``euler`` (default) t = min((k-1)
    dt, 1), the time an Euler integration of the flow with step dt has reached, so ten steps of
    0.1 cross the query-to-solution path the VFN was trained on and later iterations refine at
    t = 1; ``budget`` t = k / max_iterations, the fraction of the budget, as training's unrolled
    loop sets it over its few steps; ``zero`` t = 0 throughout, the original's timeless RAR.
    The controller's progress input is always k / max_iterations.
    """

    max_iterations: int = attrs.field(default=50, validator=_positive)
    epsilon: float = attrs.field(default=1e-3, validator=_positive_float)
    dt: float = attrs.field(default=0.1, validator=_positive_float)
    beta: float = 0.5
    time_schedule: TimeSchedule = attrs.field(
        default="euler", validator=attrs.validators.in_(("euler", "budget", "zero"))
    )
    noise: bool = True
    seed: int = 0

    def time(self, iteration: int) -> float:
        if self.time_schedule == "euler":
            return min((iteration - 1) * self.dt, 1.0)
        if self.time_schedule == "budget":
            return iteration / self.max_iterations
        return 0.0


@attrs.frozen
class ReasoningTrace:
    """What RAR made of a batch of frames."""

    states: torch.Tensor  # [B, 16, 256] the reasoned slot vectors
    present: torch.Tensor  # [B, 16] bool: slots the encoder filled (the others never move)
    iterations: torch.Tensor  # [B] iterations until every slot converged, or the budget
    converged: torch.Tensor  # [B, 16] bool (empty slots count as converged, as the original)
    final_deltas: torch.Tensor  # [B, 16] each slot's last step size (0 for empty slots)


@torch.no_grad()
def reason(models: RarModels, frames: SlotFrames, settings: ReasoningSettings) -> ReasoningTrace:
    """Run the RAR loop from `frames` until each slot converges or the budget is spent."""
    states, present = frames.vectors, frames.present
    converged = ~present
    iterations = torch.zeros(states.shape[0], dtype=torch.long, device=states.device)
    delta = torch.zeros(present.shape, dtype=states.dtype, device=states.device)
    generator = torch.Generator(device=states.device)
    generator.manual_seed(settings.seed)
    for iteration in range(1, settings.max_iterations + 1):
        moving = ~converged
        if not bool(moving.any()):
            break
        noise = torch.randn(states.shape, generator=generator, device=states.device)
        step = rar_iteration(
            models,
            states,
            present,
            moving,
            time=settings.time(iteration),
            progress=iteration / settings.max_iterations,
            last_delta=delta,
            noise=noise.to(states.dtype) if settings.noise else torch.zeros_like(states),
            dt=settings.dt,
            beta=settings.beta,
        )
        iterations += moving.any(dim=-1).long()
        # A frozen slot keeps its last step size: it is the controller's input and a signal.
        delta = torch.where(moving, step.delta, delta)
        converged = converged | (moving & ((step.delta < settings.epsilon) | step.vanished))
        states = step.states
    return ReasoningTrace(states, present, iterations, converged, delta)


@attrs.frozen
class HardCoreInputs:
    """What the hard core reads for a batch of texts (numpy, so `hard_core.pipeline.read_batch`
    and the calibration phases 3.1-3.3 take it as is)."""

    r0: np.ndarray  # [B, 16, 256] float32: the RAR's reasoned slot vectors
    present: np.ndarray  # [B, 16] bool: slots the encoder filled
    gamma: np.ndarray  # [B, 16] float32: the encoder's certainty per slot


class VoltModel:
    """The trained system end to end; `generate` is the whole path, the other methods its steps
    (with tensors, for phases that train through them)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        encoder: CodeEncoder,
        decoder: CodeDecoder,
        rar: RarModels,
        device: torch.device,
        strands: tuple[Strand, ...] | None = None,
        axioms: tuple[Axiom, ...] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()
        self.decoder = decoder.eval()
        self.rar = RarModels(rar.vfn.eval(), rar.attention.eval(), rar.controller.eval())
        self.device = device
        # The hard core `generate` reads each frame with; None: the constant strands and axioms
        # (calibrated ones, phases 3.1 and 3.3, are passed the same way).
        self.strands = strands
        self.axioms = axioms

    @classmethod
    def from_artifacts(
        cls, paths: Mapping[str, Path | str], device: torch.device | str = "auto"
    ) -> VoltModel:
        """Load the model from the artifacts' files or folders (names in `ARTIFACTS`)."""
        missing = [name for name in ARTIFACTS if name not in paths]
        if missing:
            raise ValueError(f"artifacts missing: {', '.join(missing)}")
        target = resolve_device(str(device))
        check_tokenizer_file(paths["code_tokenizer"])
        tokenizer = Tokenizer.from_file(str(locate(paths["code_tokenizer"], TOKENIZER_FILE)))
        attention = load_slot_attention(paths["slot_attention"], target)
        # The 0.4 artifact is the bias of record; slot attention's own copy is the same matrix.
        attention.set_bias(load_attention_bias(paths["code_attention_bias"]).to(target))
        rar = RarModels(
            load_scaled_vfn(paths["scaled_vfn"], target),
            attention,
            load_diffusion_controller(paths["diffusion_controller"], target),
        )
        return cls(
            tokenizer,
            load_encoder(paths["code_encoder"], target),
            load_decoder(paths["code_decoder"], target),
            rar,
            target,
        )

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> SlotFrames:
        """The frames of `texts` (each as it would be alone), with gamma per slot."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        limit = min(MAX_PROMPT_TOKENS, self.encoder.shape.max_seq_len)
        rows = [encoding.ids[:limit] or [0] for encoding in encodings]
        width = max(len(row) for row in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row)
        lengths = torch.tensor([len(row) for row in rows])
        return encode_frames(self.encoder, ids.to(self.device), lengths.to(self.device))

    def reason(self, frames: SlotFrames, settings: ReasoningSettings) -> ReasoningTrace:
        return reason(self.rar, frames, settings)

    def hard_core_inputs(
        self, texts: Sequence[str], settings: ReasoningSettings | None = None, batch: int = 64
    ) -> HardCoreInputs:
        """The frames the hard core reads for `texts`: encoded, then reasoned by the RAR loop,
        `batch` texts at a time (docs/phases.md, "Hard core"). The calibration phases and the
        model at inference read the hard core over the same frames.

        By default the RAR runs without its noise: the seeded draws are per batch, so with noise
        a text's frame would depend on which texts share its batch, and a calibration fitted on
        one batching would not hold at another.
        """
        settings = settings or ReasoningSettings(noise=False)
        r0, present, gamma = [], [], []
        for start in range(0, len(texts), batch):
            frames = self.encode(texts[start : start + batch])
            trace = self.reason(frames, settings)
            r0.append(trace.states.float().cpu().numpy())
            present.append(trace.present.cpu().numpy())
            gamma.append(frames.gamma.float().cpu().numpy())
        if not r0:
            return HardCoreInputs(
                np.zeros((0, 16, 256), np.float32),
                np.zeros((0, 16), bool),
                np.zeros((0, 16), np.float32),
            )
        return HardCoreInputs(np.concatenate(r0), np.concatenate(present), np.concatenate(gamma))

    def decode(
        self, trace: ReasoningTrace, n: int, sampling: SamplingSettings
    ) -> tuple[DecodedBatch, torch.Tensor, torch.Tensor]:
        """`n` samples per problem: the decoded rows (problem i's are rows i*n .. i*n+n-1), and
        the context [B*n, 16, 256] and context mask [B*n, 16] they were decoded from."""
        context = trace.states.repeat_interleave(n, dim=0)
        mask = slot_context_mask(trace.present).repeat_interleave(n, dim=0)
        return sample(self.decoder, context, mask, sampling), context, mask

    def generate(
        self,
        prompts: Sequence[str],
        n: int = 1,
        sampling: SamplingSettings | None = None,
        reasoning: ReasoningSettings | None = None,
    ) -> list[ProblemSamples]:
        """`n` code samples for each prompt, with their confidence signals (default settings:
        greedy decoding, the RAR of `ReasoningSettings()`)."""
        frames = self.encode(prompts)
        trace = self.reason(frames, reasoning or ReasoningSettings())
        decoded, _, _ = self.decode(trace, n, sampling or SamplingSettings())
        # The hard core reads the frames the decoder read: the same trace, not a second RAR run.
        axioms = default_axioms() if self.axioms is None else self.axioms
        readings = read_batch(
            trace.states.float().cpu().numpy(),
            trace.present.cpu().numpy(),
            frames.gamma.float().cpu().numpy(),
            self.strands,
            axioms,
        )
        results = []
        for index, prompt in enumerate(prompts):
            present = trace.present[index]
            gammas = frames.gamma[index]
            min_gamma = float(gammas[present].min()) if bool(present.any()) else 0.0
            problem_signals = ConfidenceSignals(
                min_slot_gamma=min_gamma,
                rar_iterations=int(trace.iterations[index]),
                rar_converged_slots=int((trace.converged[index] & present).sum()),
                rar_active_slots=int(present.sum()),
                rar_max_final_delta=float(trace.final_deltas[index].max()),
                mean_token_logprob=0.0,
            )
            samples = []
            for row in range(index * n, index * n + n):
                logprobs = decoded.logprobs[row]
                mean = sum(logprobs) / len(logprobs) if logprobs else -math.inf
                samples.append(
                    GeneratedSample(
                        code=self.tokenizer.decode(decoded.code_ids(row)),
                        token_ids=tuple(decoded.ids[row]),
                        token_logprobs=tuple(logprobs),
                        stopped=decoded.stopped(row),
                        signals=attrs.evolve(problem_signals, mean_token_logprob=mean),
                    )
                )
            results.append(
                ProblemSamples(
                    prompt=prompt,
                    samples=tuple(samples),
                    rar_iterations=int(trace.iterations[index]),
                    converged=tuple(bool(c) for c in trace.converged[index].tolist()),
                    final_deltas=tuple(float(d) for d in trace.final_deltas[index].tolist()),
                    slot_gamma=tuple(float(g) for g in gammas.tolist()),
                    hard_core=hard_core_report(readings[index], axioms),
                )
            )
        return results


def hard_core_report(reading: HardCoreReading, axioms: tuple[Axiom, ...]) -> HardCoreReport:
    """A hard core reading as `voltx.generation` reports it (plain values), its violated axioms
    in the order of `axioms`."""
    routing = reading.routing
    violated = {violation.axiom for violation in reading.safety.violations}
    return HardCoreReport(
        strand=routing.strand_name if routing.activated else None,
        global_gamma=float(reading.certainty.global_gamma),
        safety_level=reading.safety.level.value,
        violated_axioms=tuple(axiom.name for axiom in axioms if axiom.name in violated),
    )
