"""How a language decoder's held-out problems are run in the sandbox (phases 5.2a/b/c).

Two verdicts per held-out problem (`docs/phases.md`, 5.2): the decoder alone, decoding the code
from the frame of the problem's own solution; and the whole model, from the problem's text
through the shared VFN's RAR loop to the new decoder (`VoltModel`). Each code is run against the
problem's test program by the sandbox's runner for the language.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from voltx import PhaseContext
from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.sandbox import SandboxLimits, evaluate_many
from voltx_phases.models.decoder import CodeDecoder
from voltx_phases.models.encoder import CodeEncoder
from voltx_phases.models.inference import VoltModel
from voltx_phases.models.loading import (
    load_attention_bias,
    load_diffusion_controller,
    load_scaled_vfn,
    load_slot_attention,
)
from voltx_phases.models.rar import RarModels
from voltx_phases.scale.language_config import LanguageDecoderConfig
from voltx_phases.scale.specs_languages import VFN_ARTIFACT
from voltx_phases.translator.decoder_training import decoder_context, make_samples
from voltx_phases.translator.pairs import encode_texts


@torch.no_grad()
def run_held_out(
    decoder: CodeDecoder,
    encoder: CodeEncoder,
    tokenizer: Tokenizer,
    language: str,
    held_out: tuple[Problem, ...],
    max_len: int,
    config: LanguageDecoderConfig,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Decode each held-out solution from its frame and run the code against the problem's
    tests in the sandbox; one row per problem (id, passed, why not)."""
    chosen = held_out[: config.max_pass_rate_problems or None]
    # A solution with no token (an empty text) has no frame to decode from: left out.
    encoded = encode_texts(tokenizer, [p.solution for p in chosen], max_len)
    kept = [problem for problem, ids in zip(chosen, encoded, strict=True) if ids]
    samples = make_samples([p.solution for p in kept], tokenizer, max_len, append_eos=False)
    codes: list[str] = []
    for start in range(0, len(samples), config.batch_size):
        indices = range(start, min(start + config.batch_size, len(samples)))
        target, _, lengths = samples.batch(indices, device)
        context, mask = decoder_context(encoder, target, lengths, "slots")
        codes += [
            tokenizer.decode(ids) for ids in decoder.generate(context, max_len, context_mask=mask)
        ]
    return _execute(language, kept, codes, config)


def rar_models(ctx: PhaseContext, device: torch.device) -> RarModels:
    """The shared VFN with its slot attention and diffusion controller: the folder
    `VFN_ARTIFACT` holding the three files, or (a phase declared with `VFN_PARTS`) 2.1's three
    artifacts; the 0.4 bias set on slot attention, as `VoltModel.from_artifacts` does."""
    folder = ctx.inputs.get(VFN_ARTIFACT)

    def path(name: str) -> Path:
        return folder if folder is not None else ctx.inputs[name]

    attention = load_slot_attention(path("slot_attention"), device)
    attention.set_bias(load_attention_bias(ctx.inputs["code_attention_bias"]).to(device))
    return RarModels(
        load_scaled_vfn(path("scaled_vfn"), device),
        attention,
        load_diffusion_controller(path("diffusion_controller"), device),
    )


def run_end_to_end(
    model: VoltModel, language: str, held_out: tuple[Problem, ...], config: LanguageDecoderConfig
) -> list[dict[str, Any]]:
    """The whole path on each held-out problem: its text encoded, reasoned by the VFN's RAR
    loop, decoded greedily by the new decoder; the code run against the problem's tests."""
    problems = held_out[: config.max_pass_rate_problems or None]
    codes = []
    for start in range(0, len(problems), config.batch_size):
        chunk = problems[start : start + config.batch_size]
        codes += [result.samples[0].code for result in model.generate([p.query for p in chunk])]
    return _execute(language, list(problems), codes, config)


def _execute(
    language: str, problems: list[Problem], codes: list[str], config: LanguageDecoderConfig
) -> list[dict[str, Any]]:
    """Run each code against its problem's tests in the sandbox; one row per problem."""
    reports = evaluate_many(
        [(code, problem.tests) for code, problem in zip(codes, problems, strict=True)],
        language_name=language,
        limits=SandboxLimits(timeout_s=config.sandbox_timeout_s),
        workers=config.sandbox_workers,
    )
    rows = []
    for problem, report in zip(problems, reports, strict=True):
        failures = Counter(o.failure for o in report.outcomes if o.failure is not None)
        rows.append(
            {
                "id": problem.id,
                "passed": report.all_passed,
                "tests_passed": report.passed_count,
                "tests": report.total,
                "failure": failures.most_common(1)[0][0] if failures else None,
            }
        )
    return rows


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    passed = sum(row["passed"] for row in rows)
    return {
        "sandbox_runs": len(rows),
        "passed": passed,
        "pass_rate": passed / len(rows) if rows else 0.0,
        "failures": dict(sorted(Counter(r["failure"] for r in rows if r["failure"]).items())),
        "executions": rows,
    }
