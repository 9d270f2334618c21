"""Phases routed to different backends: a plan over Vast and local, a misrouted GPU phase on the
loopback SSH host, and a real run of 0.3 over SSH while 2.0 runs locally, at once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
import ssh_fixtures
from fake_vast import FakeVast
from ssh_fixtures import SSHServer
from test_remote_pipeline import FORWARD_ENV, SHRINK, _toml
from test_remote_pipeline import voltx as voltx_cli

import voltx
import voltx.plugins
from _support import TEST_PLUGINS, column, subprocess_env
from voltx import PhaseSpec, Resources
from voltx.ledger import Ledger, latest_run_id
from voltx.planning.preflight import PreflightError
from voltx.store import ArtifactStore
from voltx.testing import phase_plugin

sys.path.insert(0, str(TEST_PLUGINS))
import seed_phase_table

fake_vast = fakes.fake_vast
sshd_server = ssh_fixtures.sshd_server


def _host_with(monkeypatch: pytest.MonkeyPatch, *plugins: tuple[object, str]) -> None:
    """Only these plugins (and voltx-backends' backends), none of the installed ones."""
    from voltx_backends import plugin as backends_plugin

    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    for plugin, name in plugins:
        fresh.add(plugin, name)
    fresh.add(backends_plugin, "voltx-backends")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)


@pytest.fixture
def seed_routed(fake_vast: FakeVast, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVast]:
    _host_with(monkeypatch, (seed_phase_table, "seed-phase-table"))
    yield fake_vast


def test_plan_all_shows_phases_on_two_backends_with_their_prices(
    seed_routed: FakeVast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    config = tmp_path / "voltx.toml"
    # GPU phases on Vast, the CPU phase (0.3) here at a price of its own.
    config.write_text(
        '[project]\nbackend = "local"\n\n[routing]\ngpu = "vast"\n\n'
        "[backends.local]\ncpu_cores = 2\n"
    )
    code = main(
        [
            "--store",
            str(tmp_path / "store"),
            "--config",
            str(config),
            "plan",
            "all",
            "--profile",
            "full",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    backend_of, cost = column(out, "backend"), column(out, "cost")
    assert backend_of["0.3"] == "local"
    gpu_phases = [s.id for s in seed_phase_table.PHASES if s.resources.gpus]
    assert gpu_phases and all(backend_of[pid] == "vast" for pid in gpu_phases), backend_of
    # Vast phases carry the offers' prices; the local one is free.
    assert cost["0.3"] == "$0"
    # (The fake has offers of one GPU: 5.1's four-GPU machine has no price here.)
    priced = [s.id for s in seed_phase_table.PHASES if s.resources.gpus == 1 and s.reference_hours]
    assert priced and all(cost[pid] not in ("$0", "$0-0") for pid in priced), cost
    by_backend = next(line for line in out.splitlines() if line.startswith("cost by backend:"))
    assert "local $0" in by_backend and "vast $" in by_backend
    assert seed_routed.created() == []  # nothing rented for a plan


GPU_PHASE = PhaseSpec(
    id="gpu.train",
    name="trains",
    entry="voltx.testing:never_runs",
    produces=("gpu_weights",),
    resources=Resources(gpus=1, cpu_cores=1, ram_gb=1, disk_gb=0.001),
)


def test_a_gpu_phase_routed_to_the_ssh_host_is_refused_in_one_line(
    sshd_server: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _host_with(monkeypatch, (phase_plugin(GPU_PHASE), "gpu-phase"))
    config = {"gpu.train": {"backend": "ssh"}}
    # The host's settings come from a project file; the routing from the phase's table.
    project = tmp_path / "voltx.toml"
    settings = sshd_server.settings(tmp_path / "remote", python=sys.executable)
    project.write_text(
        '[phases."gpu.train"]\nbackend = "ssh"\n\n[backends.ssh]\n'
        + "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    )
    with pytest.raises(PreflightError) as caught:
        voltx.run("gpu.train", config=str(project), store=str(tmp_path / "store"))
    assert caught.value.problems == ("phase gpu.train needs 1 GPU(s); backend ssh has 0",)
    assert "\n" not in str(caught.value)
    assert config  # the same routing by the API's tables is covered in tests/test_routing.py
    assert not (tmp_path / "store" / "records" / "runs").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_0_3_over_ssh_and_2_0_here_run_at_once(sshd_server: SSHServer, tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    folder = tmp_path / "project"
    folder.mkdir()
    settings: dict[str, Any] = sshd_server.settings(
        tmp_path / "remote", python=sys.executable, forward_env=FORWARD_ENV
    )
    lines = ["[project]", 'backend = "local"', f"store = {_toml(url)}", ""]
    lines += ["[routing]", 'family.codebook = "ssh"', "", "[backends.ssh]"]
    lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
    (folder / "voltx.toml").write_text("\n".join(lines) + "\n")
    env = subprocess_env()
    plan = voltx_cli("plan", "0.3", "2.0", *SHRINK, cwd=folder, env=env).stdout
    assert any(line.startswith("0.3 ") and " ssh " in line for line in plan.splitlines()), plan
    # 0.2 and 1.1 here first; then 0.3 on the SSH host while 2.0 runs here.
    voltx_cli("run", "0.3", "2.0", *SHRINK, cwd=folder, env=env)
    store = ArtifactStore.open(url)
    run_id = latest_run_id(store)
    assert run_id is not None
    states = Ledger(store, run_id).phase_states()
    codebook, frames = states["0.3"], states["2.0"]
    assert (codebook.state, codebook.backend) == ("succeeded", "ssh")
    assert (frames.state, frames.backend) == ("succeeded", "local")
    assert codebook.started_at and codebook.finished_at and frames.started_at and frames.finished_at
    assert codebook.started_at < frames.finished_at and frames.started_at < codebook.finished_at, (
        f"0.3 {codebook.started_at}-{codebook.finished_at}, 2.0 {frames.started_at}-"
        f"{frames.finished_at}: not at once"
    )
    assert store.resolve("codebook_code").lineage["phase"] == "0.3"
    status = voltx_cli("status", cwd=folder, env=env).stdout
    assert any(line.split()[:3] == ["0.3", "succeeded", "ssh"] for line in status.splitlines())
