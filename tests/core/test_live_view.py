"""The live view of `voltx run`: a snapshot from the ledger and the jobs' progress, rendered."""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from voltx import PhaseSpec, hookimpl
from voltx.backend import Backend, JobHandle, JobRequest, JobStatus
from voltx.cli.live import (
    PlannedCost,
    ProgressReader,
    planned_costs,
    render,
    supported,
    take_snapshot,
    with_live_view,
)
from voltx.ledger import Ledger, PhaseState
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, memory_store_url, phase_plugin, registered_plugin

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
PLAN = {
    "a": PlannedCost((1.0, 1.5), 2.0, "vast:RTX 4090"),
    "b": PlannedCost((10.0, 15.0), 0.4, "vast:RTX 4090"),
}


def _state(phase_id: str, state: str, started: str, finished: str | None = None) -> PhaseState:
    job = {"backend": "vast", "job_id": f"r-{phase_id}-1", "label": f"voltx-r-{phase_id}"}
    return PhaseState(
        phase_id, state, 1, started, finished, job=job, backend="vast", outputs={}, reason=""
    )


def _snapshot() -> Any:
    states = {
        "a": _state("a", "succeeded", "2025-03-01T10:00:00+00:00", "2025-03-01T11:00:00+00:00"),
        "b": _state("b", "running", "2025-03-01T11:30:00+00:00"),
    }
    progress = {"b": {"step": 120, "total": 1000, "loss": 0.43214, "eta_s": 600.0}}
    return take_snapshot("r", ["a", "b", "c"], states, progress, PLAN, now=NOW)


def test_the_snapshot_holds_state_host_progress_and_dollars() -> None:
    snapshot = _snapshot()
    a, b, c = snapshot.rows
    assert (a.state, a.elapsed_s, a.dollars) == ("succeeded", 3600.0, pytest.approx(2.0))
    assert a.eta_s is None and a.host == "voltx-r-a"
    assert (b.state, b.step, b.total, b.loss, b.eta_s) == ("running", 120, 1000, 0.43214, 600.0)
    assert b.elapsed_s == 1800.0 and b.dollars == pytest.approx(0.2)
    assert (c.state, c.host, c.elapsed_s, c.dollars, c.planned) == ("pending", "-", None, 0.0, None)
    assert snapshot.dollars == pytest.approx(2.2)
    assert snapshot.planned == (11.0, 16.5)


def test_render_draws_every_phase_in_one_table() -> None:
    pytest.importorskip("rich")
    from rich.console import Console

    console = Console(file=io.StringIO(), width=150, color_system=None)
    console.print(render(_snapshot()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for header in ("phase", "state", "host", "step", "loss", "ETA", "$ so far", "$ plan"):
        assert header in text
    (line_b,) = [line for line in text.splitlines() if " b " in line]
    for cell in ("running", "voltx-r-b", "120/1,000", "0.4321", "10m00s", "30m00s", "$0.20"):
        assert cell in line_b, (cell, line_b)
    assert "$10.00-15.00" in line_b
    (line_c,) = [line for line in text.splitlines() if " c " in line]
    assert "pending" in line_c
    assert "spent $2.20 of a planned $11.00-16.50" in text


class _Handle(JobHandle):
    def __init__(self, job_id: str, files: Mapping[str, bytes]) -> None:
        self.job_id = job_id
        self.files = files

    @property
    def ref(self) -> dict[str, Any]:
        return {"job_id": self.job_id}

    def status(self) -> JobStatus:
        raise AssertionError("a viewer never asks a job's status")

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        return b"", offset

    def read_file(self, name: str) -> bytes | None:
        return self.files.get(name)

    def cancel(self, grace_s: float = 10.0) -> None:
        raise AssertionError("a viewer never cancels")


class _Viewer(Backend):
    name = "viewer"

    def __init__(self) -> None:
        self.attached: list[Mapping[str, Any]] = []
        self.closed = False

    def submit(self, request: JobRequest) -> JobHandle:
        raise AssertionError("a viewer never submits")

    def attach(self, ref: Mapping[str, Any]) -> JobHandle:
        self.attached.append(ref)
        progress = json.dumps({"step": 7, "total": 10, "loss": 1.5, "eta_s": 3.0}).encode()
        return _Handle(str(ref["job_id"]), {"progress.json": progress})

    def close(self) -> None:
        self.closed = True


def test_a_snapshot_from_a_real_ledger_and_progress_read_through_handles() -> None:
    store = ArtifactStore.open(memory_store_url())
    ledger = Ledger(store, "run-1")
    ledger.write_meta({"run_id": "run-1", "phases": ["a", "b"]})
    ledger.record("run_started", targets=["b"])
    job = {"job_id": "run-1-a-1", "host": "gpu-7"}
    ledger.record("started", "a", attempt=1, backend="viewer", job=job)
    viewer = _Viewer()
    reader = ProgressReader(lambda name: viewer)
    states = ledger.phase_states()
    progress = {pid: p for pid, s in states.items() if (p := reader.read(s)) is not None}
    reader.read(states["a"])  # the handle is kept, not attached again
    assert viewer.attached == [job]
    snapshot = take_snapshot("run-1", ["a", "b"], states, progress, {})
    a, b = snapshot.rows
    assert (a.state, a.host, a.step, a.total, a.loss) == ("running", "gpu-7", 7, 10, 1.5)
    assert b.state == "pending"
    reader.close()
    assert viewer.closed
    assert ledger.owner() is not None


def test_no_view_without_a_terminal() -> None:
    assert not supported(io.StringIO())

    def run(*args: Any, **kwargs: Any) -> str:
        return "ran"

    def estimate() -> Any:
        raise AssertionError("no view, no estimate")

    # Without a terminal the resolved run is never looked at either.
    assert with_live_view(run, None, estimate) is run
    assert planned_costs(None) == {}


def _greet(ctx: Any) -> None:
    (ctx.outputs["greeting"] / "hello.txt").write_text("hello")


class _InProcessBackends:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("inprocess", InProcessBackend)


def test_voltx_run_all_on_a_terminal_reads_the_project_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The live view, the plan it prices and the run share one resolved run: one read."""
    pytest.importorskip("rich")
    import voltx.plugins
    import voltx.project
    from voltx.cli import live, main

    # Only this test's plugins: `all` is the one phase below, run on threads of this process.
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    monkeypatch.setattr(voltx.plugins, "_host", voltx.plugins.PluginHost())
    monkeypatch.setattr(live, "supported", lambda stream: True)
    reads: list[Path] = []
    read = voltx.project.read_project_file

    def counted(path: Path) -> str:
        reads.append(path)
        return read(path)

    monkeypatch.setattr(voltx.project, "read_project_file", counted)
    monkeypatch.chdir(tmp_path)
    project_file = tmp_path / "voltx.toml"
    store = memory_store_url()
    project_file.write_text(f'[project]\nstore = "{store}"\nbackend = "inprocess"\n')
    greet = PhaseSpec(id="t.greet", name="greet", entry=_greet, produces=("greeting",))
    previous = signal.getsignal(signal.SIGTERM)  # main() installs its own for runs
    try:
        with registered_plugin(phase_plugin(greet)), registered_plugin(_InProcessBackends()):
            assert main(["run", "all"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "succeeded" in capsys.readouterr().out
    assert ArtifactStore.open(store).resolve("greeting").files[0].path == "hello.txt"
    assert [path.resolve() for path in reads] == [project_file.resolve()]
