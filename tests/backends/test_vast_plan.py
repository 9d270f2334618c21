"""`voltx plan` of the runbook's whole phase table, priced from the fake Vast API's offers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
from fake_vast import FakeVast

import voltx
import voltx.plugins
from _support import TEST_PLUGINS
from voltx.planning.estimates import spec_hours
from voltx_backends.vast.backend import QUOTE_OFFERS
from voltx_backends.vast.gpus import relative_speed

sys.path.insert(0, str(TEST_PLUGINS))
import seed_phase_table

fake_vast = fakes.fake_vast

SEARCH_PATHS = ("/api/v0/bundles/", "/api/v0/search/asks/")


def _offer(fake: FakeVast, offer_id: int, **fields: Any) -> None:
    """A further offer, shaped like the fake's A100 one, with `fields` changed."""
    base = dict(fake.offers[5002])
    base.update(id=offer_id, ask_contract_id=offer_id, bundle_id=offer_id + 4000, **fields)
    base["gpu_total_ram"] = base["gpu_ram"] * base["num_gpus"]
    fake.offers[offer_id] = base


@pytest.fixture
def seed_on_vast(fake_vast: FakeVast, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVast]:
    """The runbook's phase table, the real vast backend, and offers for every kind of phase.

    The fake's own offers are 1-GPU machines with 16 cores: the 4090s ($0.40, $0.45) fit the
    GPU phases, the A100 ($1.20) too. Added: a 64-core machine with a small GPU for the CPU
    phase 0.3, and 4 x A100 for 5.1.
    """
    from voltx_backends import plugin as backends_plugin

    _offer(fake_vast, 5101, machine_id=201, gpu_name="RTX 3060", gpu_ram=12288, dph_total=0.15)
    fake_vast.offers[5101].update(cpu_cores_effective=64.0, cpu_ram=128000)
    _offer(
        fake_vast,
        5102,
        machine_id=202,
        num_gpus=4,
        dph_total=5.20,
        cpu_cores_effective=64.0,
        cpu_ram=512000,
        disk_space=1000.0,
    )
    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    fresh.add(seed_phase_table, "seed-phase-table")
    fresh.add(backends_plugin, "voltx-backends")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)
    yield fake_vast


# The cheapest matching offer of each kind of phase (see the fixture).
EXPECTED_PRICE = {
    seed_phase_table.CPU32: (0.15, "RTX 3060"),
    seed_phase_table.GPU: (0.40, "RTX 4090"),
    seed_phase_table.LIGHT: (0.40, "RTX 4090"),
    seed_phase_table.MULTI: (5.20, "A100 SXM4"),
}


def test_each_phase_is_priced_from_the_cheapest_matching_offer(
    seed_on_vast: FakeVast, tmp_path: Path
) -> None:
    plan = voltx.plan("all", profile="full", backend="vast", store=str(tmp_path / "store"))
    timeline = plan.timeline
    assert timeline is not None
    for spec in seed_phase_table.PHASES:
        estimate = timeline.entry(spec.id).estimate
        assert estimate is not None, spec.id
        price, gpu = EXPECTED_PRICE[spec.resources]
        assert estimate.host == f"vast:{gpu}", spec.id
        low, _high = spec_hours(spec, "full")
        # GPU work is scaled by the rented GPU's speed against the reference H100.
        speed = relative_speed(gpu) if spec.resources.gpus else 1.0
        assert estimate.hours[0] == pytest.approx(low / speed)
        assert estimate.dollars[0] == pytest.approx((low / speed + estimate.transfer_hours) * price)
    # One price search per kind of phase, however many phases share it; nothing rented. (The
    # pool's machine plan, on by default, searches once per machine it lays out, for one offer.)
    searches = [r for r in seed_on_vast.requests if r.path in SEARCH_PATHS]
    quotes = [r for r in searches if r.body.get("limit") == QUOTE_OFFERS]
    assert len(quotes) == len({s.resources for s in seed_phase_table.PHASES}) == 4
    assert all(r.body.get("limit") == 1 for r in searches if r not in quotes)
    assert plan.machines
    assert seed_on_vast.created() == []
    assert timeline.dollars[0] > 0


def test_the_plan_shows_the_runbook_structure(
    seed_on_vast: FakeVast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    code = main(
        ["--store", str(tmp_path / "store"), "plan", "all", "--profile", "full", "-b", "vast"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    critical = next(line for line in out.splitlines() if line.startswith("critical path:"))
    path = critical.removeprefix("critical path: ").split(" -> ")
    assert path[0] == "2.1" and path[-1] == "5.3"
    assert path[path.index("2.1") + 2].startswith("3.")  # 2.1 -> 2.3 -> 3.x
    assert path[path.index("4.1") :] == ["4.1", "4.2", "4.3", "5.1", path[-2], "5.3"]
    assert path[-2].startswith("5.2")
    waves = next(line for line in out.splitlines() if line.startswith("waves"))
    # 0.3 beside 2.1; 3.1/3.2/3.3 side by side; the 5.2 languages side by side.
    assert "0.3, 2.1" in waves
    assert "3.1, 3.2, 3.3" in waves
    assert "5.2a, 5.2b, 5.2c" in waves
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    assert "in parallel on" in total and "serial" in total and "cost $" in total
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isdigit()}
    for spec in seed_phase_table.PHASES:
        assert "$" in rows[spec.id], f"phase {spec.id} has no price: {rows[spec.id]}"
    # The side lanes overlap in time with the main chain.
    plan = voltx.plan("all", profile="full", backend="vast", store=str(tmp_path / "store"))
    assert plan.timeline is not None
    entry = plan.timeline.entry
    assert entry("0.3").start[0] < entry("2.1").end[0] and entry("0.3").lane != entry("2.1").lane
    assert entry("3.1").start == entry("3.2").start == entry("3.3").start
    low, high = plan.timeline.parallel_hours
    assert low < plan.timeline.serial_hours[0] and high < plan.timeline.serial_hours[1]


@pytest.fixture
def volt_x_on_vast(fake_vast: FakeVast, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVast]:
    """The installed Volt X phases (0.2 ... 5.3) with the real vast backend, and the offers of
    `seed_on_vast`: a many-core machine for 0.3 and 4 x A100 for 5.1."""
    from voltx_backends import plugin as backends_plugin
    from voltx_phases import plugin as phases_plugin

    _offer(fake_vast, 5101, machine_id=201, gpu_name="RTX 3060", gpu_ram=12288, dph_total=0.15)
    fake_vast.offers[5101].update(cpu_cores_effective=64.0, cpu_ram=128000)
    _offer(
        fake_vast,
        5102,
        machine_id=202,
        num_gpus=4,
        gpu_ram=81920,
        dph_total=5.20,
        cpu_cores_effective=64.0,
        cpu_ram=512000,
        disk_space=1000.0,
    )
    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    fresh.add(phases_plugin, "voltx-phases")
    fresh.add(backends_plugin, "voltx-backends")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)
    yield fake_vast


def test_every_volt_x_phase_is_priced_and_drawn_in_its_lanes(
    volt_x_on_vast: FakeVast, tmp_path: Path
) -> None:
    plan = voltx.plan("all", profile="full", backend="vast", store=str(tmp_path / "store"))
    timeline = plan.timeline
    assert timeline is not None
    entries = {entry.phase_id: entry for entry in timeline.entries}
    runbook = {"0.2", "0.3", "0.4", "1.1", "1.2", "2.0", "2.1", "3.1", "3.2", "3.3"}
    runbook |= {"4.1", "4.2", "4.3", "5.1", "5.2a", "5.2b", "5.2c", "5.3"}
    assert runbook <= set(entries)
    for phase in runbook:
        estimate = entries[phase].estimate
        assert estimate is not None and estimate.host.startswith("vast:"), phase
        # 0.4 writes a constant matrix: no time, nothing to pay.
        assert estimate.dollars[0] > 0 or phase == "0.4", phase

    def side_by_side(*phases: str) -> bool:
        spans = [entries[p] for p in phases]
        return len({e.lane for e in spans}) == len(spans) and max(e.start[0] for e in spans) < min(
            e.end[0] for e in spans
        )

    assert side_by_side("0.3", "2.1")
    assert side_by_side("3.1", "3.2", "3.3")
    assert side_by_side("5.2a", "5.2b", "5.2c")
    for before, after in [("4.1", "4.2"), ("4.2", "4.3"), ("4.3", "5.1"), ("5.1", "5.2a")]:
        assert entries[before].end[0] <= entries[after].start[0]
    assert all(entries[p].end[0] <= entries["5.3"].start[0] for p in ("5.2a", "5.2b", "5.2c"))


def test_pooled_plan_packs_0_3_and_2_1_onto_the_many_core_gpu_machine(
    seed_on_vast: FakeVast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    # The quick-start's machine: an RTX 5090 with 192 cores at $0.20/h, the cheapest GPU offer.
    _offer(seed_on_vast, 5103, machine_id=203, gpu_name="RTX 5090", gpu_ram=32768, dph_total=0.20)
    seed_on_vast.offers[5103].update(cpu_cores_effective=192.0, cpu_ram=512000, disk_space=1000.0)
    config = tmp_path / "voltx.toml"
    config.write_text("[backends.vast]\npool = true\npool_prep_s = 600\n")
    store = str(tmp_path / "store")
    code = main(["--store", store, "--config", str(config), "plan", "0.3", "2.1", "-b", "vast"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    start = lines.index("machines (pool = true; times from the first rental):")
    (machine,) = [line for line in lines[start + 1 :] if line.startswith("  m")]
    assert "RTX 5090 (offer 5103)" in machine and "runs 0.3, 2.1" in machine
    assert "prep 0:10" in machine and "rented at 0:00" in machine
    summary = lines[start + 2]
    # One machine for both, against a $0.15 many-core box for 0.3 beside the 5090 for 2.1.
    assert "one machine per phase (not chosen)" in summary and "pooling saves $" in summary
    assert seed_on_vast.created() == []
