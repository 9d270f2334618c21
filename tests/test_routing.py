"""Per-phase backend routing: the rules of voltx.toml, their order, their errors, the plan."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voltx
import voltx.plugins
from _support import TEST_PLUGINS
from voltx import Backend, JobHandle, JobRequest, PhaseSpec, Resources
from voltx.backend import Quote
from voltx.errors import BackendError, ConfigError
from voltx.planning.timeline import BackendLanes, build_timeline
from voltx.project import load_project
from voltx.routing import RoutingRules, RoutingTable, RunBackends, resolve_routing
from voltx.testing import memory_store_url

sys.path.insert(0, str(TEST_PLUGINS))
import seed_phase_table

GPU = Resources(gpus=1, cpu_cores=2)
CPU = Resources(cpu_cores=2)


def _spec(phase_id: str, family: str, resources: Resources) -> PhaseSpec:
    return PhaseSpec(id=phase_id, name=phase_id, entry="x:y", family=family, resources=resources)


SPECS = [
    _spec("0.3", "codebook", CPU),
    _spec("2.1", "soft_core", GPU),
    _spec("2.2", "soft_core", GPU),
    _spec("3.1", "hard_core", GPU),
    _spec("9.9", "misc", CPU),
]


def test_the_phase_wins_then_the_family_then_the_resources_then_the_run() -> None:
    rules = RoutingRules(
        phases={"2.2": "ssh"},
        table=RoutingTable(family={"soft_core": "ray", "codebook": "ssh"}, gpu="vast"),
    )
    routing = resolve_routing(rules, SPECS, "full", "local")
    assert dict(routing.backends) == {
        "0.3": "ssh",  # its family
        "2.1": "ray",  # its family, before the GPU rule
        "2.2": "ssh",  # its own table, before its family
        "3.1": "vast",  # a GPU phase no other rule names
        "9.9": "local",  # no rule: the run's backend
    }
    assert routing.why["2.2"] == "phases.2.2" and routing.why["9.9"] == "the run's backend"
    assert routing.names(["9.9", "2.1", "0.3", "2.2"]) == ["local", "ray", "ssh"]
    assert routing.phases_on("ssh", [s.id for s in SPECS]) == ["0.3", "2.2"]


def test_resources_are_read_under_the_runs_profile() -> None:
    # On the tiny profile the same phase needs no GPU: the CPU rule sends it.
    spec = PhaseSpec(
        id="2.1",
        name="vfn",
        entry="x:y",
        resources=GPU,
        profile_resources={"tiny": CPU},
    )
    rules = RoutingRules(table=RoutingTable(gpu="vast", cpu="ssh"))
    assert resolve_routing(rules, [spec], "full", "local").backend_for("2.1") == "vast"
    assert resolve_routing(rules, [spec], "tiny", "local").backend_for("2.1") == "ssh"


def write(folder: Path, text: str) -> Path:
    path = folder / "voltx.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_phase_table_names_its_backend_apart_from_its_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [phases."0.3"]
        backend = "ssh"
        n_clusters = 64

        [routing]
        gpu = "vast"
        family.codebook = "local"
        """,
    )
    project = load_project(path, voltx.plugins.registry())
    # The backend key is routing, not config: the phase's config never sees it.
    assert dict(project.phases) == {"0.3": {"n_clusters": 64}}
    assert dict(project.routing.phases) == {"0.3": "ssh"}
    assert project.routing.table == RoutingTable(family={"codebook": "local"}, gpu="vast")


def test_unknown_backends_families_and_bad_values_are_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [phases."0.3"]
        backend = "shh"

        [phases."2.1"]
        backend = 3

        [routing]
        gpu = "vats"
        family.codebok = "ssh"
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_project(path, voltx.plugins.registry())
    problems = caught.value.problems
    assert str(path) in str(caught.value)
    assert "phases.2.1.backend: expected a backend name, got 3" in problems
    assert any(
        p.startswith("phases.0.3.backend: unknown backend 'shh'; did you mean ssh")
        for p in problems
    )
    assert any(
        p.startswith("routing.gpu: unknown backend 'vats'; did you mean vast") for p in problems
    )
    assert "routing.family.codebok: no phase has this family; did you mean codebook" in problems
    assert all("\n" not in p for p in problems)


def test_an_unknown_phase_id_with_a_backend_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[phases."0.33"]\nbackend = "ssh"\n')
    with pytest.raises(ConfigError, match=r"phases\.0\.33: no such phase; did you mean 0\.3"):
        load_project(path, voltx.plugins.registry())


# --- plans on two backends --------------------------------------------------------------------


class CpuBox(Backend):
    """A many-core CPU host at a price, no GPU."""

    name = "cpubox"

    def __init__(self, work_dir: Path | None = None, **_settings: Any) -> None:
        self.closed = False

    def capacity(self) -> Resources:
        return Resources(cpu_cores=64, ram_gb=256, disk_gb=1000)

    def quote(self, resources: Resources) -> Quote:
        return Quote(host="cpubox", dollars_per_hour=1.5)

    def submit(self, request: JobRequest) -> JobHandle:
        raise AssertionError("planning must not run anything")

    def attach(self, ref: Any) -> JobHandle:
        raise AssertionError("planning must not run anything")

    def close(self) -> None:
        CLOSED.append(self.name)


class GpuBox(CpuBox):
    """One GPU at a time, dearer."""

    name = "gpubox"
    fail_close = False

    def capacity(self) -> Resources:
        return Resources(gpus=1, cpu_cores=64, ram_gb=256, disk_gb=1000)

    def quote(self, resources: Resources) -> Quote:
        return Quote(host="gpubox", dollars_per_hour=4.0)

    def close(self) -> None:
        CLOSED.append(self.name)
        if self.fail_close:
            raise BackendError("the GPU box would not close", self.name)


CLOSED: list[str] = []


class _Boxes:
    @voltx.hookimpl
    def register_backends(self, register: Any) -> None:
        register("cpubox", CpuBox)
        register("gpubox", GpuBox)


@pytest.fixture
def boxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The runbook's phase table and the two boxes, no installed plugins."""
    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    fresh.add(seed_phase_table, "seed-phase-table")
    fresh.add(_Boxes(), "boxes")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)
    CLOSED.clear()
    yield


def test_each_phase_is_priced_on_its_own_backend(boxes: None) -> None:
    plan = voltx.plan(
        ["2.3", "0.3"],
        profile="full",
        backend="gpubox",
        config={"0.3": {"backend": "cpubox"}},
        store=memory_store_url(),
    )
    timeline = plan.timeline
    assert timeline is not None
    codebook, vfn = timeline.entry("0.3"), timeline.entry("2.1")
    assert (codebook.backend, codebook.host) == ("cpubox", "cpubox")
    assert (vfn.backend, vfn.host) == ("gpubox", "gpubox")
    assert codebook.estimate is not None and vfn.estimate is not None
    assert codebook.estimate.dollars[0] == pytest.approx(codebook.estimate.total_hours[0] * 1.5)
    assert vfn.estimate.dollars[0] == pytest.approx(vfn.estimate.total_hours[0] * 4.0)
    by_backend = timeline.dollars_by_backend
    assert set(by_backend) == {"cpubox", "gpubox"}
    assert sum(d[0] for d in by_backend.values()) == pytest.approx(timeline.dollars[0])
    # Each backend its own lanes; 0.3 runs beside 2.1 (its own host), 2.3 waits for the one GPU.
    assert timeline.lane_backends[codebook.lane] == "cpubox"
    assert timeline.lane_backends[vfn.lane] == "gpubox"
    assert codebook.start[0] == 0 and vfn.start[0] == 0
    assert sorted(CLOSED) == ["cpubox", "gpubox"]  # every backend the plan made was closed


def test_the_gantt_chart_names_each_lanes_backend(boxes: None, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from voltx.planning.gantt import lane_label, render_gantt

    plan = voltx.plan(
        ["2.3", "0.3"],
        profile="full",
        backend="gpubox",
        config={"0.3": {"backend": "cpubox"}},
        store=memory_store_url(),
    )
    timeline = plan.timeline
    assert timeline is not None
    labels = [lane_label(timeline, lane) for lane in range(timeline.lanes)]
    assert labels[timeline.entry("0.3").lane].startswith("cpubox host")
    assert labels[timeline.entry("2.1").lane].startswith("gpubox host")
    png = render_gantt(timeline, tmp_path / "plan.png", "routed")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_timeline_waits_for_room_on_a_backend_but_not_on_another() -> None:
    one_gpu = Resources(gpus=1, cpu_cores=8, ram_gb=64)
    order = ["a", "b", "c"]
    from voltx.planning.estimates import PhaseEstimate

    def hours(h: float) -> PhaseEstimate:
        return PhaseEstimate(
            phase_id="x",
            host="h",
            hours=(h, h),
            transfer_hours=0.0,
            dollars=(0.0, 0.0),
            source="spec",
        )

    estimates: dict[str, PhaseEstimate | None] = {p: hours(2.0) for p in order}
    lanes = {"gpu": BackendLanes("gpu", one_gpu), "other": BackendLanes("other", one_gpu)}
    same = build_timeline(order, lambda _p: [], estimates, {p: ("gpu", GPU) for p in order}, lanes)
    # One GPU: the three run one after another.
    assert [same.entry(p).start[0] for p in order] == [0.0, 2.0, 4.0]
    assert same.lanes == 1 and same.lane_backends == ("gpu",)
    split = build_timeline(
        order,
        lambda _p: [],
        estimates,
        {"a": ("gpu", GPU), "b": ("other", GPU), "c": ("gpu", GPU)},
        lanes,
    )
    # b's backend has its own GPU: it starts at once; c still waits for a.
    assert [split.entry(p).start[0] for p in order] == [0.0, 0.0, 2.0]
    assert split.lane_backends == ("gpu", "other")


def test_a_misrouted_gpu_phase_is_refused_in_one_line(
    boxes: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from voltx.cli import main

    config = write(
        tmp_path, '[project]\nbackend = "gpubox"\n\n[phases."2.1"]\nbackend = "cpubox"\n'
    )
    code = main(
        [
            "--store",
            str(tmp_path / "store"),
            "--config",
            str(config),
            "preflight",
            "2.1",
            "--profile",
            "full",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert problems == ["problem: phase 2.1 needs 1 GPU(s); backend cpubox has 0"]


def test_run_backends_make_each_once_and_close_all_despite_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GpuBox, "fail_close", True)
    made: list[str] = []

    def make(name: str) -> Backend:
        made.append(name)
        return {"cpubox": CpuBox, "gpubox": GpuBox}[name]()

    routing = resolve_routing(RoutingRules(phases={"0.3": "cpubox"}), SPECS, "full", "gpubox")
    CLOSED.clear()
    backends = RunBackends(routing, make)
    assert [b.name for b in backends.open(["0.3", "2.1", "2.2"])] == ["cpubox", "gpubox"]
    assert backends.for_phase("2.2") is backends.get("gpubox")
    assert made == ["cpubox", "gpubox"]
    with pytest.raises(BackendError, match="would not close"):
        backends.close()
    assert sorted(CLOSED) == ["cpubox", "gpubox"]
