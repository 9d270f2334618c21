"""Plans before renting: estimates, timeline, critical path, costs, the Gantt chart."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voltx
import voltx.plugins
from _support import TEST_PLUGINS
from voltx import Backend, JobHandle, JobRequest, Resources
from voltx.backend import Quote
from voltx.planning.estimates import (
    PhaseEstimate,
    estimate_phase,
    measured_hours,
    record_measurement,
    spec_hours,
)
from voltx.store import ArtifactStore
from voltx.testing import memory_store_url

sys.path.insert(0, str(TEST_PLUGINS))
import seed_phase_table

# Prices shaped like the runbook's: an H100 at about $2/h, CPUs cheap, 4 GPUs about $10/h.
PRICES = {0: 0.30, 1: 2.00, 4: 9.96}


class PricedCloud(Backend):
    """A backend that only quotes: every phase on its own machine, priced by GPU count."""

    name = "pricedcloud"

    def __init__(self, work_dir: Path | None = None, **_settings: Any) -> None:
        pass

    def quote(self, resources: Resources) -> Quote:
        return Quote(
            host=f"pricedcloud:{resources.gpus}gpu",
            dollars_per_hour=PRICES[resources.gpus],
            dollars_per_hour_high=PRICES[resources.gpus] * 1.2,
            relative_speed=1.0,
            bandwidth_mb_s=100.0,
            separate_host=True,
        )

    def submit(self, request: JobRequest) -> JobHandle:
        raise AssertionError("planning must not run anything")

    def attach(self, ref: Any) -> JobHandle:
        raise AssertionError("planning must not run anything")


class _CloudPlugin:
    @voltx.hookimpl
    def register_backends(self, register: Any) -> None:
        register("pricedcloud", PricedCloud)


@pytest.fixture
def seed_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the runbook's phase table and the quoting backend (no installed phases)."""
    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    fresh.add(seed_phase_table, "seed-phase-table")
    fresh.add(_CloudPlugin(), "priced-cloud")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)
    yield


def test_the_runbook_structure_and_critical_path(seed_registry: None, tmp_path: Path) -> None:
    started = time.perf_counter()
    plan = voltx.plan("all", profile="full", backend="pricedcloud", store=memory_store_url())
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"planning took {elapsed:.2f} s"
    timeline = plan.timeline
    assert timeline is not None
    assert timeline.critical_path == (
        "2.1",
        "2.3",
        "3.2",
        "4.1",
        "4.2",
        "4.3",
        "5.1",
        "5.2a",
        "5.3",
    ) or timeline.critical_path[:1] == ("2.1",)
    path = timeline.critical_path
    assert path[0] == "2.1" and path[-1] == "5.3"
    for phase in ("4.1", "4.2", "4.3", "5.1"):
        assert phase in path
    assert any(p.startswith("3.") for p in path) and any(p.startswith("5.2") for p in path)

    def overlaps(a: str, b: str) -> bool:
        ea, eb = timeline.entry(a), timeline.entry(b)
        return ea.start[0] < eb.end[0] and eb.start[0] < ea.end[0] and ea.lane != eb.lane

    assert overlaps("0.3", "2.1"), "the codebook should run beside the VFN"
    assert overlaps("3.1", "3.2") and overlaps("3.2", "3.3") and overlaps("3.1", "3.3")
    assert overlaps("5.2a", "5.2b") and overlaps("5.2b", "5.2c")
    low, high = timeline.parallel_hours
    serial_low, serial_high = timeline.serial_hours
    assert low < serial_low and high < serial_high
    # The runbook's own arithmetic: the sequential chain dominates, the side lanes hide.
    assert low + 1 >= 100 + 5 + 5 + 75 + 40 + 15 + 400 + 50 + 100
    every = {e.phase_id: e for e in timeline.entries}
    assert every["5.1"].estimate is not None
    assert every["5.1"].estimate.dollars[0] == pytest.approx(
        (400 + every["5.1"].estimate.transfer_hours) * 9.96
    )
    assert timeline.dollars[0] > 0


def test_the_cli_prints_the_plan_and_draws_the_gantt(
    seed_registry: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    png = tmp_path / "plan.png"
    code = main(
        [
            "--store",
            str(tmp_path / "store"),
            "plan",
            "all",
            "--profile",
            "full",
            "--backend",
            "pricedcloud",
            "--gantt",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "critical path: 2.1 ->" in out
    assert "in parallel on" in out and "serial" in out
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_by_profile_and_hardware() -> None:
    (spec,) = [s for s in seed_phase_table.PHASES if s.id == "2.1"]
    assert spec_hours(spec, "full") == (100, 200)
    assert spec_hours(spec, "tiny") == pytest.approx((0.1, 0.2))
    fast = Quote(host="h100", relative_speed=1.0, dollars_per_hour=2.0)
    slow = Quote(host="4090", relative_speed=0.5, dollars_per_hour=0.5)
    assert estimate_phase(spec, "full", slow, 0).hours == (200, 400)
    assert estimate_phase(spec, "full", fast, 0).dollars == (200, 400)
    (cpu_phase,) = [s for s in seed_phase_table.PHASES if s.id == "0.3"]
    # A CPU phase does not get faster on a faster GPU.
    assert (
        estimate_phase(cpu_phase, "full", slow, 0).hours
        == estimate_phase(cpu_phase, "full", fast, 0).hours
    )


def test_transfer_time_counts_only_on_separate_hosts() -> None:
    (spec,) = [s for s in seed_phase_table.PHASES if s.id == "4.1"]
    gigabyte = 10**9
    remote = Quote(host="r", bandwidth_mb_s=100.0, separate_host=True)
    local = Quote(host="l", bandwidth_mb_s=100.0, separate_host=False)
    assert estimate_phase(spec, "full", remote, 36 * gigabyte).transfer_hours == pytest.approx(0.1)
    assert estimate_phase(spec, "full", local, 36 * gigabyte).transfer_hours == 0.0


def test_learned_estimates_replace_the_spec() -> None:
    store = ArtifactStore.open(memory_store_url())
    (spec,) = [s for s in seed_phase_table.PHASES if s.id == "3.1"]
    assert measured_hours(store, "3.1", "full", "h100") is None
    for hours in (3.0, 2.0, 4.0):
        record_measurement(store, "3.1", "full", "h100", hours)
    measured = measured_hours(store, "3.1", "full", "h100")
    assert measured == 3.0
    estimate = estimate_phase(spec, "full", Quote(host="h100"), 0, measured)
    assert isinstance(estimate, PhaseEstimate) and estimate.source == "measured"
    assert estimate.hours == (3.0, pytest.approx(3.6))
    assert measured_hours(store, "3.1", "full", "a100") is None  # other hardware: the spec's guess


def test_preflight_reports_every_problem_at_once(
    seed_registry: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing inputs and resources the backend cannot give, in one report, nothing run."""
    from voltx.cli import main

    class SmallMachine(PricedCloud):
        name = "smallmachine"

        def capacity(self) -> Resources:
            return Resources(gpus=1, cpu_cores=8, ram_gb=64, disk_gb=60)

        def quote(self, resources: Resources) -> Quote:
            return Backend.quote(self, resources)

    class SmallPlugin:
        @voltx.hookimpl
        def register_backends(self, register: Any) -> None:
            register("smallmachine", SmallMachine)

    voltx.plugins._host.add(SmallPlugin(), "small")
    (tmp_path / "voltx.toml").write_text('[inputs]\nmissing_dataset = "data/nothere.jsonl"\n')
    store = tmp_path / "store"
    code = main(
        [
            "--store",
            str(store),
            "--config",
            str(tmp_path / "voltx.toml"),
            "preflight",
            "5.3",
            "--profile",
            "full",
            "--backend",
            "smallmachine",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "needs 4 GPU(s); backend smallmachine has 1" in out  # 5.1
    assert "needs 100 GB of disk; backend smallmachine has 60 GB free" in out  # GPU phases
    assert not list(store.glob("refs/*")) and not list(store.glob("records/runs/*"))


def test_manifest_lists_what_a_phase_needs(
    seed_registry: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    store = tmp_path / "store"
    codebook = tmp_path / "codebook.bin"
    codebook.write_bytes(b"VXCB" + bytes(60))
    assert main(["--store", str(store), "artifacts", "add", "codebook", str(codebook)]) == 0
    capsys.readouterr()
    assert main(["--store", str(store), "manifest", "3.1"]) == 0
    out = capsys.readouterr().out
    assert "codebook.bin" in out and "added (" in out
    assert "vfn" in out and "phase 2.1 (not run yet)" in out
