"""What a running phase is handed: inputs, outputs, config, logger, metrics, checkpoints."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from voltx.checkpoints import CheckpointManager
from voltx.errors import PhaseError


class MetricsReporter:
    """Progress and metrics of one phase: ``metrics.jsonl`` plus a ``progress.json`` snapshot."""

    def __init__(self, folder: Path, log: Any, total: int | None = None) -> None:
        self.folder = folder
        self.log = log
        self.total = total
        self._started = time.monotonic()
        self._metrics = open(folder / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def log_metrics(self, step: int, **values: float) -> None:
        """Append one row of metrics (loss, lr, ...) for `step`."""
        row = {"time": time.time(), "step": step, **values}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()

    def progress(self, step: int, total: int | None = None, **values: float) -> None:
        """Report how far the phase is (a snapshot in ``progress.json``, replaced each call).

        Values given here describe the moment (loss, samples/s); to keep a history, call
        `log_metrics`, which appends to ``metrics.jsonl``.
        """
        total = total if total is not None else self.total
        elapsed = time.monotonic() - self._started
        eta = (elapsed / step) * (total - step) if total and step > 0 else None
        snapshot = {"step": step, "total": total, "elapsed_s": elapsed, "eta_s": eta, **values}
        staging = self.folder / ".progress.json.tmp"
        staging.write_text(json.dumps(snapshot))
        os.replace(staging, self.folder / "progress.json")

    def close(self) -> None:
        self._metrics.close()


@attrs.frozen
class PhaseContext:
    """Everything a phase's `run(ctx)` needs. Inputs are read-only; write only into `outputs`."""

    run_id: str
    phase_id: str
    config: Any
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    work_dir: Path
    log: Any
    metrics: MetricsReporter
    checkpoints: CheckpointManager
    device: str = "cpu"
    profile: str | None = None
    stop: threading.Event = attrs.field(factory=threading.Event)
    # Data parallel (`voltx.data_parallel`): this process's rank among `world_size` ranks. Only
    # rank 0's outputs are committed and only rank 0 may commit checkpoints.
    rank: int = 0
    world_size: int = 1

    def input_file(self, name: str, pattern: str = "*") -> Path:
        """The one file of input `name` (a file artifact, or a folder holding one match)."""
        path = self.inputs[name]
        if path.is_file():
            return path
        matches = sorted(p for p in path.rglob(pattern) if p.is_file())
        if len(matches) != 1:
            raise PhaseError(
                self.phase_id, f"input {name!r} holds {len(matches)} files matching {pattern!r}"
            )
        return matches[0]

    def stop_requested(self) -> bool:
        """True once the job was asked to stop (cancelled, or its run ran out of budget).

        A training loop that checks after each step can commit a checkpoint at that step and
        raise `voltx.errors.PhaseStopped`, so a re-run loses nothing. A phase that never checks
        is interrupted a few seconds later (`voltx.worker.STOP_PATIENCE_S`) with what it last
        committed.
        """
        return self.stop.is_set()

    def progress(self, step: int, total: int | None = None, **values: float) -> None:
        """Shorthand for `metrics.progress`."""
        self.metrics.progress(step, total, **values)
