"""Phase 0.2, the dataset pipeline: raw benchmark and corpus files in, unified artifacts out.

    voltx run 0.2                                  # embedded data only (no downloads needed)
    voltx artifacts add raw_humaneval HumanEval.jsonl.gz && voltx run 0.2
    voltx run 0.2 --set 0.2.skip_bad_lines=true    # skip and count malformed lines

    voltx.run("0.2", profile="tiny")

Raw inputs are optional artifacts, present when the user added them to the store (or listed them
under ``[inputs]`` in ``voltx.toml``); each is a file or a folder of JSONL files (see
`readers.py`). Every output is a folder holding ``<name>.jsonl`` and ``stats.json`` (count,
source, skipped lines, dropped records; nothing machine-specific, so the same inputs and config
give byte-identical artifacts).

Each output, from its raw input when given, else from the embedded data:

- `humaneval`: `raw_humaneval`; else a held-out slice of the generated problems.
- `mbpp`: `raw_mbpp` (full or sanitized schema); else a second, disjoint held-out slice.
- `code_training_combined`: `humaneval` + `mbpp` + `raw_problems`; else `humaneval` + `mbpp` +
  the generated problems that are not held out.
- `apps_{introductory,interview,competition}_train`: `raw_apps` split by difficulty; else the
  generated training problems split by their template's difficulty.
- `stack_python`: the python files of `raw_stack`; else the running Python's standard library.
- `multipl_e`: `raw_multipl_e`; else empty, the only output allowed to be.

`code_training_combined` is the training set of the later phases. As in the original (421 =
164 HumanEval + 257 MBPP), it holds both benchmarks; ``combine_benchmarks = false`` leaves them
out so that phase 5.3 measures problems never trained on. The third part is `raw_problems` (any
unified JSONL, any difficulty) when given, else the generated problems that are not held out.

A malformed line stops the phase with ``file:line: reason`` unless ``skip_bad_lines`` is set.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from voltx import PhaseContext, PhaseError
from voltx_phases.datasets import readers
from voltx_phases.datasets.config import DatasetConfig
from voltx_phases.datasets.generator import (
    TEMPLATES,
    GenerationReport,
    generate_problems,
    split_generated,
)
from voltx_phases.datasets.readers import ReadStats
from voltx_phases.datasets.schema import DatasetLineError, Document, Problem
from voltx_phases.datasets.specs import APPS_DIFFICULTIES
from voltx_phases.datasets.stdlib_corpus import python_version, read_stdlib
from voltx_phases.execution.sandbox import SandboxLimits

EMBEDDED = "embedded"

T = TypeVar("T", Problem, Document)
_STAGES = 6


def run(ctx: PhaseContext) -> None:
    """Write every output of phase 0.2 (see the module docstring)."""
    pipeline = _Pipeline(ctx)
    try:
        pipeline.benchmark("humaneval", "raw_humaneval", readers.read_humaneval, stage=1)
        pipeline.benchmark("mbpp", "raw_mbpp", readers.read_mbpp, stage=2)
        pipeline.combined(stage=3)
        pipeline.apps(stage=4)
        pipeline.corpus(stage=5)
        pipeline.multipl_e(stage=6)
    except DatasetLineError as exc:
        raise PhaseError(ctx.phase_id, str(exc)) from exc
    except FileNotFoundError as exc:
        raise PhaseError(ctx.phase_id, str(exc)) from exc


class _Pipeline:
    """The phase's steps, sharing the context and the lazily generated embedded problems."""

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        self.config: DatasetConfig = ctx.config
        self._last_progress = 0.0
        # Count and source of each output written so far (combined reuses the benchmarks').
        self._counts: dict[str, int] = {}
        self._sources: dict[str, str] = {}

    # --- outputs -----------------------------------------------------------------------------

    def benchmark(
        self, name: str, raw: str, reader: Callable[..., Iterator[Problem]], stage: int
    ) -> None:
        """`humaneval` or `mbpp`: the raw file converted, or a held-out generated slice."""
        if raw in self.ctx.inputs:
            stats = ReadStats()
            records = reader(self._input(raw), skip_bad_lines=self.skip, stats=stats)
            count = self._write(name, records, stage)
            self._finish(name, count, raw, stats.to_json(), stage)
        else:
            held_out = self._split[0] if name == "humaneval" else self._split[1]
            count = self._write(name, held_out, stage)
            self._finish(name, count, EMBEDDED, self._generator_stats, stage)

    def combined(self, stage: int) -> None:
        """`code_training_combined`: the benchmarks (unless left out) and the training part."""
        name = "code_training_combined"
        target = self._file(name)
        parts: dict[str, int] = {}
        with open(target, "w", encoding="utf-8") as out:
            if self.config.combine_benchmarks:
                for benchmark in ("humaneval", "mbpp"):
                    # Copied byte for byte: the benchmark outputs are already unified JSONL.
                    with open(self._file(benchmark), encoding="utf-8") as part:
                        shutil.copyfileobj(part, out)
                    parts[benchmark] = self._counts[benchmark]
            if "raw_problems" in self.ctx.inputs:
                stats = ReadStats()
                records: Iterable[Problem] = readers.read_unified(
                    self._input("raw_problems"), skip_bad_lines=self.skip, stats=stats
                )
                parts["raw_problems"] = self._append(out, records, stage)
                extra: dict[str, Any] = {"raw_problems": stats.to_json()}
            else:
                parts[EMBEDDED] = self._append(out, self._split[2], stage)
                extra = self._generator_stats
        sources = [self._sources[b] for b in ("humaneval", "mbpp") if b in parts]
        sources.append("raw_problems" if "raw_problems" in parts else EMBEDDED)
        source = " + ".join(dict.fromkeys(sources))
        self._finish(name, sum(parts.values()), source, {"parts": parts, **extra}, stage)

    def apps(self, stage: int) -> None:
        """The three `apps_*_train` outputs, from one pass over `raw_apps` or from the pool."""
        names = {d: f"apps_{d}_train" for d in APPS_DIFFICULTIES}
        counts = dict.fromkeys(APPS_DIFFICULTIES, 0)
        if "raw_apps" in self.ctx.inputs:
            source, stats = "raw_apps", ReadStats()
            problems: Iterable[Problem] = readers.read_apps(
                self._input("raw_apps"), skip_bad_lines=self.skip, stats=stats
            )
        else:
            source, stats, problems = EMBEDDED, None, self._split[2]
        files = {d: open(self._file(n), "w", encoding="utf-8") for d, n in names.items()}  # noqa: SIM115
        try:
            for problem in problems:
                difficulty = problem.difficulty or ""
                if difficulty not in files:
                    if stats is not None:
                        stats.dropped[f"difficulty {difficulty or 'missing'}"] += 1
                    continue
                files[difficulty].write(_line(problem))
                counts[difficulty] += 1
                self._tick(stage, sum(counts.values()))
        finally:
            for stream in files.values():
                stream.close()
        extra = stats.to_json() if stats is not None else self._generator_stats
        for difficulty, name in names.items():
            self._finish(name, counts[difficulty], source, extra, stage)

    def corpus(self, stage: int) -> None:
        """`stack_python`: python files of `raw_stack`, or of the standard library."""
        config = self.config
        low, high = config.corpus_min_bytes, config.corpus_max_bytes
        if "raw_stack" in self.ctx.inputs:
            stats = ReadStats()
            documents = readers.read_stack(
                self._input("raw_stack"),
                skip_bad_lines=self.skip,
                stats=stats,
                languages={"python"},
                min_bytes=low,
                max_bytes=high,
            )
            count = self._write("stack_python", _first(documents, config.corpus_max_files), stage)
            self._finish("stack_python", count, "raw_stack", stats.to_json(), stage)
        else:
            dropped = ReadStats().dropped
            documents = read_stdlib(
                config.corpus_max_files, min_bytes=low, max_bytes=high, dropped=dropped
            )
            count = self._write("stack_python", documents, stage)
            extra = {"python": python_version(), "dropped": dict(sorted(dropped.items()))}
            self._finish("stack_python", count, "stdlib", extra, stage)

    def multipl_e(self, stage: int) -> None:
        """`multipl_e`: the raw rows converted, or an empty file when there are none."""
        if "raw_multipl_e" in self.ctx.inputs:
            stats = ReadStats()
            rows = readers.read_multipl_e(
                self._input("raw_multipl_e"), skip_bad_lines=self.skip, stats=stats
            )
            count = self._write("multipl_e", rows, stage)
            self._finish("multipl_e", count, "raw_multipl_e", stats.to_json(), stage)
        else:
            self._file("multipl_e").write_bytes(b"")
            self._finish("multipl_e", 0, "none", {}, stage, allow_empty=True)

    # --- the embedded problems ---------------------------------------------------------------

    @cached_property
    def _generation(self) -> GenerationReport:
        config = self.config
        self.ctx.log.info("generating embedded problems", count=config.generated_count)
        report = generate_problems(
            config.generated_count,
            config.seed,
            limits=SandboxLimits(timeout_s=config.test_timeout_s),
            workers=config.validate_workers,
            progress=lambda done, total: self.ctx.progress(done, total),
        )
        if report.failed:
            self.ctx.log.warning(
                "generated problems failed their own tests and were dropped",
                failed=dict(report.failed),
                examples=report.failure_examples,
            )
        if len(report.problems) < config.generated_count:
            raise PhaseError(
                self.ctx.phase_id,
                f"the generator kept only {len(report.problems)} of "
                f"{config.generated_count} problems: {report.failure_examples}",
            )
        return report

    @cached_property
    def _split(self) -> tuple[list[Problem], list[Problem], list[Problem]]:
        return split_generated(self._generation.problems)

    @property
    def _generator_stats(self) -> dict[str, Any]:
        report = self._generation.to_json()
        return {"generator": {"seed": self.config.seed, "templates": len(TEMPLATES), **report}}

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def skip(self) -> bool:
        return self.config.skip_bad_lines

    def _input(self, name: str) -> Path:
        return self.ctx.inputs[name]

    def _file(self, name: str) -> Path:
        return self.ctx.outputs[name] / f"{name}.jsonl"

    def _write(self, name: str, records: Iterable[Problem] | Iterable[Document], stage: int) -> int:
        with open(self._file(name), "w", encoding="utf-8") as out:
            return self._append(out, records, stage)

    def _append(self, out: Any, records: Iterable[Problem] | Iterable[Document], stage: int) -> int:
        count = 0
        for record in records:
            out.write(_line(record))
            count += 1
            self._tick(stage, count)
        return count

    def _tick(self, stage: int, records: int) -> None:
        # progress() writes a file: at most one report every two seconds.
        now = time.monotonic()
        if now - self._last_progress >= 2.0:
            self._last_progress = now
            self.ctx.progress(stage, _STAGES, records=float(records))

    def _finish(
        self,
        name: str,
        count: int,
        source: str,
        extra: dict[str, Any],
        stage: int,
        allow_empty: bool = False,
    ) -> None:
        if count == 0 and not allow_empty:
            raise PhaseError(
                self.ctx.phase_id,
                f"{name} would be empty: {source} gave no records "
                f"({extra.get('skipped_lines', 0)} lines skipped, dropped {extra.get('dropped')})",
            )
        self._counts[name] = count
        self._sources[name] = source
        stats = {"artifact": name, "count": count, "source": source}
        stats["skipped_lines"] = extra.get("skipped_lines", 0)
        stats.update(extra)
        text = json.dumps(stats, indent=1, sort_keys=True) + "\n"
        (self.ctx.outputs[name] / "stats.json").write_text(text, encoding="utf-8")
        for example in extra.get("skipped_examples", []):
            self.ctx.log.warning("skipped a malformed line", artifact=name, error=example)
        self.ctx.log.info(
            "dataset written",
            artifact=name,
            count=count,
            source=source,
            skipped_lines=stats["skipped_lines"],
        )
        self.ctx.progress(stage, _STAGES, records=float(count))


def _line(record: Problem | Document) -> str:
    return json.dumps(record.to_json(), ensure_ascii=False) + "\n"


def _first(records: Iterator[T], limit: int) -> Iterator[T]:
    """The first `limit` records; closes the reader (and its file) when it stops early."""
    try:
        for index, record in enumerate(records, 1):
            yield record
            if index >= limit:
                return
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
