"""Phases 4.2 and 4.3's handle on the 4.x policy, and the verification of its samples in the
sandbox (`docs/phases.md`, 4.2).

    policy = Policy.load(ctx.inputs, "vfn_e2e", device)
    batch = policy.rollout(texts, n=2, settings=config.policy, seed=step_seed)
    reports = verify(problems, batch, config.policy)
    logp = policy.sequence_logprobs(batch, config.policy, seed=step_seed)   # carries gradients

The policy is 4.1's (`rollouts.py`): problem text -> frozen encoder frame -> `rar_steps` RAR
iterations unrolled with gradients -> frozen decoder sampled at `temperature`; log pi(sample) is
the sum of its tokens' tempered log-probabilities from one teacher-forced pass, so the policy
gradient reaches the VFN, slot attention and the controller through the decoder's
cross-attention on the reasoned slots. The RAR noise is replayed from the same seed, so the
context the gradient flows through is the one the sample was drawn from. This module adds what
4.2 and 4.3 need around it: loading from a `vfn_*` folder, encoding problem text, the sample's
raw confidence, the safety veto, and pass@1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from tokenizers import Tokenizer

from voltx_phases._common.artifact_files import locate
from voltx_phases.alignment import rollouts
from voltx_phases.alignment.rlvf_config import PolicySettings
from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.results import TestReport
from voltx_phases.execution.sandbox import evaluate_many
from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.safety import Axiom, SafetyLevel, assess
from voltx_phases.models.decoder import CodeDecoder
from voltx_phases.models.encoder import CodeEncoder, SlotFrames
from voltx_phases.models.inference import ReasoningSettings, VoltModel
from voltx_phases.models.loading import (
    CONTROLLER_FILE,
    SCALED_VFN_FILE,
    SLOT_ATTENTION_FILE,
    load_attention_bias,
    load_decoder,
    load_diffusion_controller,
    load_encoder,
    load_scaled_vfn,
    load_slot_attention,
)
from voltx_phases.models.rar import RarModels
from voltx_phases.translator.checks import TOKENIZER_FILE

# The three files of a `vfn_e2e` / `vfn_rlvf` / `vfn_sleep` folder, in 2.1's formats.
MODEL_FILES = {
    "scaled_vfn": SCALED_VFN_FILE,
    "slot_attention": SLOT_ATTENTION_FILE,
    "diffusion_controller": CONTROLLER_FILE,
}


@attrs.frozen
class Rollout:
    """`n` samples per prompt: sample i belongs to prompt i // n."""

    frames: SlotFrames
    n: int
    drawn: rollouts.Rollout
    codes: list[str]
    # voltx.generation's `confidence`: the prompt frame's least slot gamma times the geometric
    # mean probability of the sample's tokens. Uncalibrated; 4.2 maps it through the gamma curve.
    raw_confidence: np.ndarray


class Policy:
    """The frozen translator and the three trained modules of the soft core."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        encoder: CodeEncoder,
        decoder: CodeDecoder,
        rar: RarModels,
        device: torch.device,
    ) -> None:
        self.tokenizer = tokenizer
        self.device = device
        # The translator stays frozen: only the soft core learns from the reward.
        for module in (encoder, decoder):
            module.eval()
            module.requires_grad_(False)
        self.rar = rar
        self.model = VoltModel(tokenizer, encoder, decoder, rar, device)

    @classmethod
    def load(cls, inputs: Mapping[str, Path], model: str, device: torch.device) -> Policy:
        """The translator's artifacts and the soft core of the folder `inputs[model]`."""
        tokenizer = Tokenizer.from_file(str(locate(inputs["code_tokenizer"], TOKENIZER_FILE)))
        folder = inputs[model]
        attention = load_slot_attention(folder / SLOT_ATTENTION_FILE, device)
        attention.set_bias(load_attention_bias(inputs["code_attention_bias"]).to(device))
        rar = RarModels(
            load_scaled_vfn(folder / SCALED_VFN_FILE, device),
            attention,
            load_diffusion_controller(folder / CONTROLLER_FILE, device),
        )
        return cls(
            tokenizer,
            load_encoder(inputs["code_encoder"], device),
            load_decoder(inputs["code_decoder"], device),
            rar,
            device,
        )

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trained modules, keyed by their weights files' stems."""
        return {
            "scaled_vfn": self.rar.vfn,
            "slot_attention": self.rar.attention,
            "diffusion_controller": self.rar.controller,
        }

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for module in self.modules().values() for p in module.parameters()]

    def save(self, folder: Path) -> None:
        """The three weights files of a `vfn_*` artifact folder."""
        from voltx_phases._common.weights import save_weights

        for name, module in self.modules().items():
            save_weights(module, folder / MODEL_FILES[name])

    def reasoned(self, frames: SlotFrames, settings: PolicySettings, seed: int) -> torch.Tensor:
        """The unrolled RAR's final slot states [B, 16, 256], differentiable when grad is on."""
        return rollouts.reasoned_states(
            self.rar, frames.vectors, frames.present, _drawing(settings), seed
        )

    def rollout(
        self,
        texts: Sequence[str],
        n: int,
        settings: PolicySettings,
        seed: int,
        greedy: bool = False,
    ) -> Rollout:
        """`n` samples for each of `texts`, drawn with seeds derived from `seed` (`greedy`:
        temperature 0, for pass@1)."""
        frames = self.model.encode(texts)
        with torch.no_grad():
            states = self.reasoned(frames, settings, seed)
        sampling = _drawing(settings)
        if greedy:
            sampling = attrs.evolve(sampling, temperature=0.0)
        drawn = rollouts.draw(self.model.decoder, states, frames.present, n, sampling, seed)
        gammas = torch.where(frames.present, frames.gamma, torch.ones_like(frames.gamma))
        least = [
            float(gammas[i].min()) if bool(frames.present[i].any()) else 0.0
            for i in range(len(texts))
        ]
        codes, confidence = [], []
        for row, ids in enumerate(drawn.ids):
            mean = drawn.logprobs[row] / len(ids) if ids else -math.inf
            codes.append(self.tokenizer.decode(drawn.code_ids(row)))
            confidence.append(least[row // n] * math.exp(mean))
        return Rollout(frames, n, drawn, codes, np.asarray(confidence, dtype=np.float64))

    def sequence_logprobs(
        self, rollout: Rollout, settings: PolicySettings, seed: int
    ) -> torch.Tensor:
        """log pi of each sample [B * n] through the RAR replayed from `seed` (differentiable in
        the soft core's weights)."""
        states = self.reasoned(rollout.frames, settings, seed)
        return rollouts.sequence_logprobs(
            self.model.decoder,
            states,
            rollout.frames.present,
            rollout.drawn.ids,
            rollout.drawn.problems,
            settings.temperature,
        )

    def vetoed(
        self, codes: Sequence[str], axioms: tuple[Axiom, ...], settings: PolicySettings, seed: int
    ) -> list[bool]:
        """Whether the safety axioms halt each program's frame (`VoltModel.hard_core_inputs`)."""
        reasoning = ReasoningSettings(max_iterations=settings.safety_rar_iterations, seed=seed)
        inputs = self.model.hard_core_inputs(list(codes), reasoning)
        return [
            assess(
                SlotFrame.from_arrays(inputs.r0[i], inputs.present[i], inputs.gamma[i]), axioms
            ).level
            is SafetyLevel.HALT
            for i in range(len(codes))
        ]


def _drawing(settings: PolicySettings) -> rollouts.PolicySettings:
    """4.1's settings of the same policy, which draws and differentiates it."""
    return rollouts.PolicySettings(
        rar_steps=settings.rar_steps,
        rar_dt=settings.rar_dt,
        rar_beta=settings.rar_beta,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )


def verify(
    problems: Sequence[Problem], rollout: Rollout, settings: PolicySettings
) -> list[TestReport]:
    """Each sample's tests, one sandboxed process per test, the samples in parallel."""
    jobs = [(code, problems[row // rollout.n].tests) for row, code in enumerate(rollout.codes)]
    limits = SandboxLimits(timeout_s=settings.sandbox_timeout_s)
    return evaluate_many(jobs, limits=limits, workers=settings.sandbox_workers)


def pass_rate(
    policy: Policy,
    problems: Sequence[Problem],
    settings: PolicySettings,
    seed: int,
    chunk: int = 64,
) -> float:
    """pass@1 of greedy decoding: the fraction of `problems` whose one sample passes every test
    (0 for no problems)."""
    passed = 0
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk]
        rollout = policy.rollout([p.query for p in part], 1, settings, seed + start, greedy=True)
        passed += sum(report.all_passed for report in verify(part, rollout, settings))
    return passed / len(problems) if problems else 0.0
