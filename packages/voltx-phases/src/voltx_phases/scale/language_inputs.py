"""The problems a language phase (5.2a/b/c) trains and validates on, per language.

Problems users bring come as ``raw_language_problems``: unified problem JSONL (`docs/formats.md`)
whose ``language`` names the sandbox's language (MultiPL-E's codes, ``js``, ``rs``, ``go_test.go``,
are understood too) and whose one test is the program that follows the solution. When the
artifact is present it is the only source: a language it holds no problem of is a one-line
error naming the file and what it does hold, rather than a quiet switch to generated problems.
Without it, each language's problems are generated and validated in the sandbox.
"""

from __future__ import annotations

from collections import Counter

from voltx import PhaseContext, PhaseError
from voltx_phases.datasets.multipl_e import sandbox_language
from voltx_phases.datasets.readers import read_unified
from voltx_phases.datasets.schema import DatasetLineError, Problem
from voltx_phases.execution.sandbox import SandboxLimits
from voltx_phases.scale.language_config import LanguageDecoderConfig
from voltx_phases.scale.language_problems import generate_language_problems

RAW = "raw_language_problems"
GENERATED = "generated"


def load_problems(
    ctx: PhaseContext, config: LanguageDecoderConfig
) -> dict[str, tuple[list[Problem], str]]:
    """language -> (its problems in file or generation order, where they came from)."""
    if RAW in ctx.inputs:
        return _given(ctx, config)
    found: dict[str, tuple[list[Problem], str]] = {}
    for language in config.languages:
        report = generate_language_problems(
            language,
            config.generated_per_language,
            config.seed,
            limits=SandboxLimits(timeout_s=config.sandbox_timeout_s),
            workers=config.sandbox_workers,
        )
        if report.failed:
            ctx.log.warning(
                "generated problems failed their own tests and were dropped",
                language=language,
                failed=dict(report.failed),
                examples=report.failure_examples,
            )
        if len(report.problems) < config.generated_per_language:
            raise PhaseError(
                ctx.phase_id,
                f"the {language} generator kept only {len(report.problems)} of "
                f"{config.generated_per_language} problems: {report.failure_examples}",
            )
        ctx.log.info("problems generated", **report.to_json())
        found[language] = (report.problems, GENERATED)
    return found


def _given(
    ctx: PhaseContext, config: LanguageDecoderConfig
) -> dict[str, tuple[list[Problem], str]]:
    path = ctx.inputs[RAW]
    grouped: dict[str, list[Problem]] = {}
    try:
        for problem in read_unified(path):
            language = sandbox_language(problem.language) or problem.language
            if problem.solution.strip() and problem.tests:
                grouped.setdefault(language, []).append(problem)
    except (DatasetLineError, FileNotFoundError) as exc:
        raise PhaseError(ctx.phase_id, f"{RAW}: {exc}") from exc
    for language in config.languages:
        if not grouped.get(language):
            held = Counter({name: len(items) for name, items in grouped.items()})
            holds = ", ".join(f"{n} {name}" for name, n in sorted(held.items())) or "nothing usable"
            raise PhaseError(
                ctx.phase_id,
                f"{RAW} has no {language} problem with a solution and a test "
                f"(it holds {holds}); add some, or remove the artifact to generate them",
            )
    return {language: (grouped[language], RAW) for language in config.languages}
