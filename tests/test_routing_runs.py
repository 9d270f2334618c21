"""Runs whose phases go to two backends at once: capacity apart, the ledger, re-attach, budget.

Both backends run real worker subprocesses on this machine: ``local``, and ``alt`` (the test
plugin ``routed_backends``, local jobs under another name and price). Each is given one core,
so two one-core phases overlap only when they are on different backends.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _support import TEST_PLUGINS, column, subprocess_env, voltx_cli, wait_for
from voltx.ledger import Ledger, latest_run_id
from voltx.store import ArtifactStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLUGINS = "slow_pipeline,priced_backend,routed_backends"


def project(folder: Path, default: str, side: str | None, price: float = 0.0) -> Path:
    """A project whose phases run on `default`, slow.side on `side`; one core each."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[project]", f'backend = "{default}"', ""]
    if side is not None:
        lines += ['[phases."slow.side"]', f'backend = "{side}"', ""]
    lines += ["[backends.local]", "cpu_cores = 1", ""]
    lines += ["[backends.priced]", "cpu_cores = 1", f"dollars_per_hour = {price}", ""]
    lines += ["[backends.alt]", "cpu_cores = 1", f"dollars_per_hour = {2 * price}", ""]
    (folder / "voltx.toml").write_text("\n".join(lines))
    return folder


def spans(store: Path) -> dict[str, tuple[str, str, str]]:
    """phase -> (backend, started, finished) of the latest run, from its ledger."""
    opened = ArtifactStore.open(str(store))
    run_id = latest_run_id(opened)
    assert run_id is not None
    states = Ledger(opened, run_id).phase_states()
    return {
        phase: (str(state.backend), str(state.started_at), str(state.finished_at))
        for phase, state in states.items()
    }


def overlap(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


ENV = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS=PLUGINS)
TWO = [
    "run",
    "slow.a",
    "slow.side",
    "--set",
    "slow.a.seconds=1.5",
    "--set",
    "slow.side.seconds=1.5",
]


def test_a_backends_capacity_is_its_own(tmp_path: Path) -> None:
    routed = project(tmp_path / "routed", "local", "alt")
    voltx_cli(*TWO, cwd=routed, env=ENV)
    ran = spans(routed / ".voltx")
    assert ran["slow.a"][0] == "local" and ran["slow.side"][0] == "alt"
    assert overlap(ran["slow.a"], ran["slow.side"]), ran
    status = column(voltx_cli("status", cwd=routed, env=ENV).stdout, "backend")
    assert status["slow.a"] == "local" and status["slow.side"] == "alt"
    # The same two phases on one backend of one core run one after the other.
    single = project(tmp_path / "single", "local", None)
    voltx_cli(*TWO, cwd=single, env=ENV)
    ran = spans(single / ".voltx")
    assert not overlap(ran["slow.a"], ran["slow.side"]), ran


def test_plan_shows_each_phases_backend(tmp_path: Path) -> None:
    routed = project(tmp_path / "routed", "local", "alt")
    out = voltx_cli("plan", "slow.a", "slow.side", cwd=routed, env=ENV).stdout
    backends = column(out, "backend")
    assert backends == {"slow.a": "local", "slow.side": "alt"}, out


def test_the_budget_counts_the_jobs_of_every_backend(tmp_path: Path) -> None:
    # $3600/h on priced and $7200/h on alt: a dollar a second and two.
    routed = project(tmp_path / "priced", "priced", "alt", price=3600.0)
    voltx_cli(*TWO, cwd=routed, env=ENV)
    snapshot = json.loads(voltx_cli("status", "--json", cwd=routed, env=ENV).stdout)
    phases = snapshot["phases"]
    assert phases["slow.a"]["backend"] == "priced" and phases["slow.side"]["backend"] == "alt"
    on_priced, on_alt = phases["slow.a"]["spent"], phases["slow.side"]["spent"]
    assert 1.5 <= on_priced < 6 and 3.0 <= on_alt < 12, phases
    assert snapshot["spent"] == pytest.approx(on_priced + on_alt, abs=0.01)
    # A run limit below what both together cost stops the run, whichever backend spends it.
    stopped = voltx_cli(
        *TWO,
        "--force",
        "--set",
        "slow.side.seconds=30",
        "--budget",
        "4",
        cwd=routed,
        env=ENV,
        check=False,
    )
    assert stopped.returncode != 0
    snapshot = json.loads(voltx_cli("status", "--json", cwd=routed, env=ENV).stdout)
    assert snapshot["status"] == "budget_exceeded", snapshot


def test_a_crashed_run_reattaches_each_job_to_its_own_backend(tmp_path: Path) -> None:
    routed = project(tmp_path / "routed", "local", "alt")
    args = [
        "run",
        "slow.b",
        "slow.side",
        "--set",
        "slow.b.seconds=3",
        "--set",
        "slow.side.seconds=3",
    ]
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=routed,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = routed / ".voltx"
    wait_for(
        lambda: (
            any(store.glob("work/jobs/*slow.b*/outputs/slow_b/part-1.txt"))
            and any(store.glob("work/jobs/*slow.side*/outputs/slow_side/part-1.txt"))
        )
    )
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait()
    rerun = voltx_cli(*args, cwd=routed, env=ENV)
    reattached = [line for line in rerun.stderr.splitlines() if "re-attached" in line]
    assert len(reattached) == 2, rerun.stderr
    assert any("slow.side" in line and "alt" in line for line in reattached), reattached
    assert any("slow.b" in line and "local" in line for line in reattached), reattached
    ran = spans(store)
    assert ran["slow.b"][0] == "local" and ran["slow.side"][0] == "alt"
    # Each re-attached job was the original one: neither phase ran twice.
    assert len(list(store.glob("work/jobs/*slow.b*"))) == 1
    assert len(list(store.glob("work/jobs/*slow.side*"))) == 1
