"""Phase 5.3: pass@k of the trained model on every benchmark in the store, as a report.

    voltx run 5.3
    voltx run 5.3 --set 5.3.samples_per_problem=20 --set 5.3.max_problems=50
    voltx report                                   # print (or --open) the latest report

    voltx.run("5.3", profile="tiny")

Steps (docs/phases.md, 5.3):

1. read each benchmark: HumanEval, MBPP, APPS per difficulty, and the MultiPL-E rows per
   language (any row naming a language runs in that language's sandbox runner);
2. ground truth: each benchmark's reference solutions through the harness first; a problem
   whose reference fails is reported and left out (`ground_truth.py`);
3. contamination: the benchmark problems that a training set upstream of the model holds,
   found from the store's lineage (`contamination.py`); every score is reported with and
   without them;
4. `samples_per_problem` samples per problem from the model (`VoltModel.generate`), each run
   against the problem's tests in the sandbox; pass@k with the unbiased estimator
   (`pass_at_k.py`), the RAR iterations of solved and unsolved problems;
5. `benchmark_report`: report.md, report.html, report.json and PNGs (`report_render.py`).
   pass@1 per GPU-hour is printed by `voltx report`, from the durations in the lineage: the
   artifact's content depends only on its inputs and config.

The model is the pipeline's last: 1.x's tokenizer, encoder and decoder, the soft core of 5.1's
`vfn_500m`, and for MultiPL-E rows 5.2's decoder of the row's language (`report_config.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import torch

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx.checkpoints import CheckpointManager
from voltx.errors import VoltxError
from voltx.job_document import JOB_FILE, JobDocument
from voltx.store import ArtifactStore
from voltx_phases._common.devices import resolve_device
from voltx_phases.datasets.multipl_e import sandbox_language
from voltx_phases.datasets.schema import Problem, read_problems
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.models.inference import ReasoningSettings, VoltModel
from voltx_phases.models.loading import load_decoder
from voltx_phases.models.sampling import SamplingSettings
from voltx_phases.scale import contamination as lineage_check
from voltx_phases.scale.ground_truth import candidate_program, check_references, run_programs
from voltx_phases.scale.pass_at_k import SampleCounts, pass_at_ks
from voltx_phases.scale.report_config import (
    LANGUAGE_DECODERS,
    MODEL_INPUTS,
    SOFT_CORE,
    SOFT_CORE_PARTS,
    TRANSLATOR,
    BenchmarkReportConfig,
)
from voltx_phases.scale.report_render import ProblemOutcome, write_report

# Benchmark artifacts (phase 0.2's outputs) and how the report names them.
BENCHMARKS = {
    "humaneval": "HumanEval",
    "mbpp": "MBPP",
    "apps_introductory_train": "APPS introductory",
    "apps_interview_train": "APPS interview",
    "apps_competition_train": "APPS competition",
}
MULTILINGUAL = "multipl_e"  # one benchmark per language its rows name
INPUTS = (*BENCHMARKS, MULTILINGUAL)


def run(ctx: PhaseContext) -> None:
    config: BenchmarkReportConfig = ctx.config
    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    limits = SandboxLimits(timeout_s=config.test_timeout_s)
    benchmarks, sources = read_benchmarks(ctx.inputs, config.max_problems)
    ctx.log.info("benchmarks read", problems={k: len(v) for k, v in benchmarks.items()})

    truths = {
        label: check_references(problems, limits, config.sandbox_workers)
        for label, problems in benchmarks.items()
    }
    for label, truth in truths.items():
        for broken in truth.broken:
            ctx.log.warning(
                "reference solution fails; problem excluded",
                benchmark=label,
                problem=broken.problem_id,
                reason=broken.reason,
            )

    store, model_digests = _lineage_access(ctx)
    if store is None:
        ctx.log.warning("no store lineage to read: the contamination check cannot run")
        contamination = lineage_check.unknown(benchmarks)
    else:
        contamination = lineage_check.find_contamination(store, model_digests, benchmarks)
    for label, ids in contamination.found.items():
        if ids:
            ctx.log.warning(
                "CONTAMINATED: benchmark problems were in the model's training data",
                benchmark=label,
                problems=len(ids),
            )

    models = _Models(ctx.inputs, resolve_device(config.device, ctx))
    # Resumed from the latest checkpoint: batches are seeded by their first problem's index,
    # so a resumed run draws what an uninterrupted one would have.
    outcomes = load_outcomes(ctx.checkpoints)
    total = sum(len(t.kept) for t in truths.values())
    done = sum(len(rows) for rows in outcomes.values())
    if done:
        ctx.log.info("resuming from a checkpoint", problems_done=done)
    for label, truth in truths.items():
        rows = outcomes.setdefault(label, [])
        for start in range(len(rows), len(truth.kept), config.batch_problems):
            batch = truth.kept[start : start + config.batch_problems]
            rows.extend(_sample_and_run(models.for_benchmark(label), batch, config, limits, start))
            done += len(batch)
            save_outcomes(ctx.checkpoints, done, outcomes)
            ctx.progress(done, total)
            if ctx.stop_requested():
                raise PhaseStopped(ctx.phase_id, f"{done} of {total} problems evaluated")
    write_report(
        ctx.outputs["benchmark_report"],
        config=config,
        outcomes={label: outcomes[label] for label in truths},  # input order, resumed or not
        sources=sources,
        truths=truths,
        contamination=contamination,
        gamma_curve=ctx.inputs.get("gamma_calibration"),
    )
    for label, rows in outcomes.items():
        scores = pass_at_ks([SampleCounts(o.problem_id, o.n, o.c) for o in rows], config.ks)
        ctx.log.info("benchmark scored", benchmark=label, problems=len(rows), **scores)
    # Kept out of the report, which depends only on inputs and config.
    ctx.log.info("evaluation finished", hours=round((time.monotonic() - started) / 3600, 4))


class _Models:
    """The evaluated model, with the decoder of each MultiPL-E language swapped in on demand."""

    def __init__(self, inputs: Mapping[str, Path], device: torch.device) -> None:
        paths: dict[str, Path] = {name: inputs[name] for name in TRANSLATOR}
        paths.update({part: inputs[SOFT_CORE] for part in SOFT_CORE_PARTS})
        self._inputs = inputs
        self._base = VoltModel.from_artifacts(paths, device)
        self._by_decoder: dict[str, VoltModel] = {}

    def for_benchmark(self, label: str) -> VoltModel:
        """The Python model, or for "MultiPL-E <code>" the one with that language's decoder."""
        if not label.startswith(MULTIPL_E_LABEL):
            return self._base
        language = sandbox_language(label.removeprefix(MULTIPL_E_LABEL))
        artifact = LANGUAGE_DECODERS.get(language or "")
        if artifact is None:
            return self._base
        if artifact not in self._by_decoder:
            base = self._base
            decoder = load_decoder(self._inputs[artifact], base.device)
            self._by_decoder[artifact] = VoltModel(
                base.tokenizer, base.encoder, decoder, base.rar, base.device
            )
        return self._by_decoder[artifact]


MULTIPL_E_LABEL = "MultiPL-E "


def read_benchmarks(
    inputs: Mapping[str, Path], max_problems: int
) -> tuple[dict[str, list[Problem]], dict[str, str]]:
    """Each benchmark's problems (label -> problems, in file order, the first `max_problems`
    when it is not 0) and where each benchmark came from (phase 0.2's stats.json `source`)."""
    benchmarks: dict[str, list[Problem]] = {}
    sources: dict[str, str] = {}
    for name in INPUTS:
        if name not in inputs:
            continue
        folder = inputs[name]
        path = folder / f"{name}.jsonl" if folder.is_dir() else folder
        try:
            problems = list(read_problems(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise PhaseError("5.3", f"{path}: not unified problem JSONL ({exc})") from None
        source = _source(folder)
        if name == MULTILINGUAL:
            for language in sorted({p.language for p in problems}):
                label = f"{MULTIPL_E_LABEL}{language}"
                benchmarks[label] = _first(
                    [p for p in problems if p.language == language], max_problems
                )
                sources[label] = source
        elif problems:
            benchmarks[BENCHMARKS[name]] = _first(problems, max_problems)
            sources[BENCHMARKS[name]] = source
    return benchmarks, sources


def _first(problems: list[Problem], count: int) -> list[Problem]:
    return problems[:count] if count else problems


def _source(folder: Path) -> str:
    stats = folder / "stats.json" if folder.is_dir() else None
    if stats is None or not stats.is_file():
        return "unknown"
    try:
        return str(json.loads(stats.read_text(encoding="utf-8")).get("source", "unknown"))
    except ValueError:
        return "unknown"


def _sample_and_run(
    model: VoltModel,
    problems: Sequence[Problem],
    config: BenchmarkReportConfig,
    limits: SandboxLimits,
    offset: int,
) -> list[ProblemOutcome]:
    """`samples_per_problem` samples of each problem, run against its tests."""
    n = config.samples_per_problem
    # Seeded by the batch's first problem, so a rerun draws the same samples.
    generated = model.generate(
        [p.query for p in problems],
        n=n,
        sampling=SamplingSettings(
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=config.seed + offset,
        ),
        reasoning=ReasoningSettings(
            max_iterations=config.max_iterations, seed=config.seed + offset
        ),
    )
    jobs = [
        (problem, candidate_program(problem, sample.code))
        for problem, samples in zip(problems, generated, strict=True)
        for sample in samples.samples
    ]
    verdicts = run_programs(jobs, limits, config.sandbox_workers)
    outcomes = []
    for index, (problem, samples) in enumerate(zip(problems, generated, strict=True)):
        passed = tuple(v.passed for v in verdicts[index * n : index * n + n])
        outcomes.append(
            ProblemOutcome(
                problem_id=problem.id,
                n=n,
                c=sum(passed),
                rar_iterations=samples.rar_iterations,
                passed=passed,
                confidences=tuple(s.confidence for s in samples.samples),
            )
        )
    return outcomes


def _lineage_access(ctx: PhaseContext) -> tuple[ArtifactStore | None, dict[str, str]]:
    """The store and the model's input digests, from the worker's job document.

    A phase is handed local paths only; the lineage lives in the store the job names. Reading
    manifests needs no run lease, so the phase opens the store read-only."""
    path = ctx.work_dir / JOB_FILE
    if not path.is_file():
        return None, {}
    try:
        job = JobDocument.read(path)
        store = ArtifactStore.open(job.store)
    except VoltxError as exc:
        ctx.log.warning("the job's store cannot be opened", error=str(exc))
        return None, {}
    return store, {name: job.inputs[name] for name in MODEL_INPUTS if name in job.inputs}


OUTCOMES_FILE = "outcomes.json"


def save_outcomes(
    checkpoints: CheckpointManager, done: int, outcomes: Mapping[str, Sequence[ProblemOutcome]]
) -> None:
    """The problems evaluated so far, as JSON (a checkpoint is never pickled)."""
    data = {label: [attrs.asdict(o) for o in rows] for label, rows in outcomes.items()}
    with checkpoints.save(done) as folder:
        (folder / OUTCOMES_FILE).write_text(json.dumps(data), encoding="utf-8")


def load_outcomes(checkpoints: CheckpointManager) -> dict[str, list[ProblemOutcome]]:
    """The outcomes of the latest checkpoint, or none."""
    latest = checkpoints.latest()
    if latest is None:
        return {}
    data = json.loads((latest.path / OUTCOMES_FILE).read_text(encoding="utf-8"))
    return {
        label: [
            ProblemOutcome(
                problem_id=row["problem_id"],
                n=row["n"],
                c=row["c"],
                rar_iterations=row["rar_iterations"],
                passed=tuple(row["passed"]),
                confidences=tuple(row["confidences"]),
            )
            for row in rows
        ]
        for label, rows in data.items()
    }
