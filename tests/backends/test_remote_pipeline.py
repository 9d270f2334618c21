"""The real pipeline up to phase 2.1, run remotely: on fake Vast instances and on the loopback sshd.

Each test runs ``voltx run`` as a subprocess, as a user would. The phases are voltx-phases' own
(tiny profile, shrunk further by ``--set``), their workers run over SSH with this venv's python,
and the store is either moto's S3 (the host reads and writes it itself, with the AWS settings the
backend forwards without being told) or a folder here (inputs pushed to the host, outputs pulled
back). A planted AWS secret must reach the workers and nothing else: no command line, no file left
on the host, no output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fake_vast as fakes
import pytest
import ssh_fixtures
from fake_vast import FakeVast, quick_settings
from ssh_fixtures import SSHServer

from _support import TEST_PLUGINS, CommandLineWatch, statuses, subprocess_env
from voltx.budget import BUDGET_EXIT_CODE
from voltx.ledger import Ledger, latest_run_id
from voltx.store import ArtifactStore

if TYPE_CHECKING:
    from conftest import S3Server  # tests/backends/conftest.py, the `s3` fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

fake_vast = fakes.fake_vast
sshd_server = ssh_fixtures.sshd_server

RUN_TIMEOUT_S = 240
PIPELINE = ("0.2", "0.4", "1.1", "2.0", "2.1")
# The tiny profile, smaller still: a few seconds per phase on two CPU cores.
SHRINK = (
    "--profile",
    "tiny",
    "--set",
    "0.2.generated_count=30",
    "--set",
    "0.2.corpus_max_files=50",
    "--set",
    "1.1.epochs=1",
    "--set",
    "1.1.max_pairs=64",
    "--set",
    "1.1.tokenizer_max_files=50",
)
# What the workers need besides the store's settings (which nobody lists: the backends send them).
FORWARD_ENV = ["PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_HOME", "VOLTX_CACHE_DIR"]
PLANTED_SECRET = "planted-aws-secret-Zq81VwXk3"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def write_project(
    folder: Path, backend: str, settings: dict[str, Any], store: str | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[project]", f"backend = {_toml(backend)}"]
    lines += [f"store = {_toml(store)}"] if store else []
    lines += ["", f"[backends.{backend}]"]
    lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
    (folder / "voltx.toml").write_text("\n".join(lines) + "\n")
    return folder


def voltx(
    *args: str, cwd: Path, env: dict[str, str], expect: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "voltx", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert result.returncode == expect, (
        f"voltx {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def files_holding(secret: str, *folders: Path) -> list[str]:
    return [
        str(path)
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]


def assert_pipeline_committed(store: ArtifactStore) -> None:
    """2.1's artifacts, complete, made by 2.1 from the upstream phases' outputs in `store`."""
    for name in ("scaled_vfn", "scaled_vfn_stage1", "slot_attention", "diffusion_controller"):
        artifact = store.resolve(name)
        assert artifact.lineage["phase"] == "2.1", name
        store.verify(name)
    frames = store.ref("problem_frames")
    assert frames is not None
    assert frames in store.resolve("scaled_vfn").lineage["inputs"].values()


def run_in_s3(project: Path, store_url: str, remote: Path) -> subprocess.CompletedProcess[str]:
    """`voltx run 2.1` on the project's S3 store with a planted secret, checking where it went."""
    env = subprocess_env(AWS_SECRET_ACCESS_KEY=PLANTED_SECRET)
    with CommandLineWatch(PLANTED_SECRET) as watch:
        result = voltx("run", "2.1", *SHRINK, cwd=project, env=env)
    assert statuses(result.stdout) == dict.fromkeys(PIPELINE, "succeeded"), result.stdout
    # The secret reached the workers (they wrote to the store)...
    jobs = sorted((remote / "jobs").iterdir())
    assert len(jobs) == len(PIPELINE)
    for job in jobs:
        assert json.loads((job / "job.json").read_text())["store"] == store_url
        assert not (job / "env").exists()  # read and deleted by the job as it started
    # ...and nothing else: command lines, files here or on the host, the run's output.
    assert watch.scans > 0 and watch.seen == []
    assert files_holding(PLANTED_SECRET, project, remote) == []
    assert PLANTED_SECRET not in result.stdout + result.stderr
    return result


# --- Vast.ai -----------------------------------------------------------------------------------


def vast_settings(remote: Path, **overrides: Any) -> dict[str, Any]:
    return quick_settings(
        remote,
        status_interval_s=0.1,
        provision_timeout_s=60.0,
        ssh_timeout_s=30.0,
        forward_env=FORWARD_ENV,
        **overrides,
    )


def test_vast_run_of_2_1_on_an_s3_store(fake_vast: FakeVast, s3: S3Server, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    store_url = s3.url("vast")
    project = write_project(tmp_path / "project", "vast", vast_settings(remote), store_url)
    run_in_s3(project, store_url, remote)

    # The pool (the default): the chain runs on one machine, destroyed at the end.
    assert [(i.id, i.label) for i in fake_vast.live()] == []
    store = ArtifactStore.open(store_url)
    run_id = latest_run_id(store)
    labels = sorted(i.label for i in fake_vast.created())
    assert labels == [f"voltx-{run_id}-m1"]
    # Everything went to S3, nothing through a folder store here.
    assert_pipeline_committed(store)
    assert s3.keys("vast/manifests/")
    assert not (project / ".voltx" / "refs").exists()
    # The log was streamed here while the job ran: the instance is gone, it still reads.
    logs = voltx("logs", "2.1", cwd=project, env=subprocess_env())
    assert "phase finished" in logs.stdout


# --- SSH ---------------------------------------------------------------------------------------


def ssh_settings(server: SSHServer, remote: Path) -> dict[str, Any]:
    return server.settings(remote, python=sys.executable, forward_env=FORWARD_ENV)


def test_ssh_run_of_2_1_on_an_s3_store(
    sshd_server: SSHServer, s3: S3Server, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    store_url = s3.url("ssh")
    project = write_project(
        tmp_path / "project", "ssh", ssh_settings(sshd_server, remote), store_url
    )
    run_in_s3(project, store_url, remote)
    assert_pipeline_committed(ArtifactStore.open(store_url))
    # The host used the object store itself: nothing was staged into a folder store there.
    assert not (remote / "store").exists()


def test_ssh_run_of_2_1_stages_a_folder_store(sshd_server: SSHServer, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    project = write_project(tmp_path / "project", "ssh", ssh_settings(sshd_server, remote))
    result = voltx("run", "2.1", *SHRINK, cwd=project, env=subprocess_env())
    assert statuses(result.stdout) == dict.fromkeys(PIPELINE, "succeeded"), result.stdout
    # The outputs came back to the folder store here, the inputs went to the host's copy.
    store = ArtifactStore.open(str(project / ".voltx"))
    assert_pipeline_committed(store)
    frames = store.ref("problem_frames")
    assert (remote / "store" / "manifests" / f"{frames}.json").exists()


# --- Independent phases on two instances at once -----------------------------------------------


def _job_interval(job: Path) -> tuple[float, float]:
    """When a job ran on its host: when its wrapper wrote its pid, and its exit code."""
    return (job / "pid").stat().st_mtime, (job / "exit_code").stat().st_mtime


def test_independent_phases_run_on_two_instances_at_once(
    fake_vast: FakeVast, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    # One instance per job (pool = false): each lane on a machine of its own.
    project = write_project(tmp_path / "project", "vast", vast_settings(remote, pool=False))
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    seconds = ("--set", "slow.a.seconds=2", "--set", "slow.side.seconds=2")
    began = time.monotonic()
    result = voltx("run", "slow.a", "slow.side", *seconds, cwd=project, env=env)
    took = time.monotonic() - began
    assert statuses(result.stdout) == {"slow.a": "succeeded", "slow.side": "succeeded"}
    assert fake_vast.live() == []
    machines = {i.label.rsplit("-", 1)[-1]: i.machine_id for i in fake_vast.created()}
    assert set(machines) == {"slow.a", "slow.side"} and len(set(machines.values())) == 2

    # The ledger shows the two phases' times overlapping...
    store = ArtifactStore.open(str(project / ".voltx"))
    run_id = latest_run_id(store)
    assert run_id is not None
    phases = Ledger(store, run_id).phase_states()
    a, side = phases["slow.a"], phases["slow.side"]
    assert a.started_at and a.finished_at and side.started_at and side.finished_at
    assert a.started_at < side.finished_at and side.started_at < a.finished_at
    # ...and so do the jobs themselves, as their hosts saw them.
    (job_a,) = (remote / "jobs").glob("*slow.a*")
    (job_side,) = (remote / "jobs").glob("*slow.side*")
    start_a, end_a = _job_interval(job_a)
    start_side, end_side = _job_interval(job_side)
    assert start_a < end_side and start_side < end_a, (start_a, end_a, start_side, end_side)
    print(f"two lanes of 2 s each took {took:.1f} s in all")


# --- Preemption mid-training -------------------------------------------------------------------


def test_preempted_training_resumes_on_a_new_instance_to_the_same_weights(
    fake_vast: FakeVast, s3: S3Server, tmp_path: Path
) -> None:
    """The instance dies under 2.1 once a checkpoint reached S3; the new one ends bit-exact."""
    remote = tmp_path / "remote"
    # One instance per job, found by its phase's label (a pooled machine's preemption:
    # tests/backends/test_vast_pool_runs.py).
    settings = vast_settings(remote, pool=False)
    reference = write_project(tmp_path / "reference", "vast", settings, s3.url("reference"))
    voltx("run", "2.1", *SHRINK, cwd=reference, env=subprocess_env())
    expected = ArtifactStore.open(s3.url("reference")).resolve("scaled_vfn")
    rented_before = {i.id for i in fake_vast.created()}

    store_url = s3.url("preempted")
    project = write_project(tmp_path / "project", "vast", settings, store_url)
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "2.1", *SHRINK],
        cwd=project,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fake_vast.wait_for(
            lambda: any(k.endswith("/latest.json") for k in s3.keys("preempted/checkpoints/2.1/")),
            "2.1's first checkpoint in the store",
            RUN_TIMEOUT_S,
        )
        (training,) = [i for i in fake_vast.live() if i.label.endswith("-2.1")]
        fake_vast.preempt(training.id)
        out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        orchestrator.kill()
    assert orchestrator.returncode == 0, err
    assert statuses(out) == dict.fromkeys(PIPELINE, "succeeded"), out
    assert "job lost; resubmitting" in err

    # A second instance took 2.1 over from the store's checkpoint, not from the start...
    renters = [
        i for i in fake_vast.created() if i.label.endswith("-2.1") and i.id not in rented_before
    ]
    assert len(renters) == 2 and renters[0].id == training.id
    (second_job,) = (remote / "jobs").glob("*2.1-2*")
    log = (second_job / "log").read_text()
    assert "checkpoint restored from the store" in log and '"resuming"' in log
    # ...and ended where the uninterrupted run did, byte for byte.
    store = ArtifactStore.open(store_url)
    assert store.resolve("scaled_vfn").files == expected.files
    assert fake_vast.live() == []


# --- A budget stops training; a larger one resumes it ------------------------------------------

# More unrolled RAR steps per batch: 2.1 trains for seconds rather than one, with checkpoints of
# the same size, so a time limit can land between its first checkpoint and its last epoch.
SLOW_TRAINING = ("--set", "2.1.rar_steps=24")


def with_phase_limit(project: Path, max_hours: float) -> None:
    """Limit 2.1 to `max_hours` per invocation; a stopped job gets time to send its checkpoint."""
    text = (project / "voltx.toml").read_text().split("\n[budget]")[0]
    budget = f'\n[budget]\ngrace_s = 30\n\n[budget.phases."2.1"]\nmax_hours = {max_hours!r}\n'
    (project / "voltx.toml").write_text(text + budget)


def job_events(job: Path) -> list[dict[str, Any]]:
    """The worker's JSON log lines (anything else the job printed is left out)."""
    events = []
    for line in (job / "log").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def training_window(store_url: str, remote: Path) -> tuple[float, float]:
    """Seconds from 2.1's start (when its budget clock starts) to its first checkpoint in the
    store, and to its last epoch, in the latest run of `store_url`."""
    store = ArtifactStore.open(store_url)
    run_id = latest_run_id(store)
    assert run_id is not None
    started = Ledger(store, run_id).phase_states()["2.1"].started_at
    assert started is not None
    (job,) = (remote / "jobs").glob(f"{run_id}-2.1-*")
    events = job_events(job)
    uploaded = min(_at(e["timestamp"]) for e in events if e["event"] == "checkpoint uploaded")
    trained = max(_at(e["timestamp"]) for e in events if e["event"] == "epoch done")
    return uploaded - _at(started), trained - _at(started)


@pytest.mark.alone
def test_budget_stops_training_and_a_larger_one_resumes_to_the_same_weights(
    fake_vast: FakeVast, s3: S3Server, tmp_path: Path
) -> None:
    """2.1's own time limit stops it after a checkpoint reached S3: every instance goes, the run
    is budget_exceeded; a larger limit resumes from that checkpoint and ends bit-exact."""
    remote = tmp_path / "remote"
    # One instance per job: 2.1's rentals are found by its label below.
    settings = vast_settings(remote, pool=False)
    env = subprocess_env()
    began = time.monotonic()
    reference = write_project(tmp_path / "reference", "vast", settings, s3.url("reference"))
    voltx("run", "2.1", *SHRINK, *SLOW_TRAINING, cwd=reference, env=env)
    expected = ArtifactStore.open(s3.url("reference")).resolve("scaled_vfn")
    # The limit falls in the reference's training, well after its first checkpoint was stored.
    first_checkpoint, last_epoch = training_window(s3.url("reference"), remote)
    assert last_epoch - first_checkpoint > 2.0, (first_checkpoint, last_epoch)
    limit_s = first_checkpoint + 0.4 * (last_epoch - first_checkpoint)
    rented_before = {i.id for i in fake_vast.created()}
    referenced = time.monotonic()

    store_url = s3.url("budget")
    project = write_project(tmp_path / "project", "vast", settings, store_url)
    with_phase_limit(project, limit_s / 3600)
    stopped = voltx(
        "run", "2.1", *SHRINK, *SLOW_TRAINING, cwd=project, env=env, expect=BUDGET_EXIT_CODE
    )
    assert "budget exceeded" in stopped.stderr.strip().splitlines()[-1], stopped.stderr
    assert fake_vast.live() == []
    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["status"] == "budget_exceeded"
    assert status["phases"]["2.1"]["status"] == "stopped"
    assert status["phases"]["2.1"]["reason"].startswith("budget: phase ran "), status
    # The job was training when it was stopped, and its checkpoint is in the store. (Whether an
    # epoch ended first depends on how busy the machine is next to the reference run: the
    # limit is the reference's timing, so a slower second run may stop inside its first epoch.)
    run_id = status["run_id"]
    (first_job,) = (remote / "jobs").glob(f"{run_id}-2.1-1")
    first_events = [e["event"] for e in job_events(first_job)]
    assert "checkpoint uploaded" in first_events and "phase finished" not in first_events
    assert [k for k in s3.keys("budget/checkpoints/2.1/") if k.endswith("/latest.json")]
    stopped_at = time.monotonic()

    with_phase_limit(project, 1.0)
    resumed = voltx("run", "2.1", *SHRINK, *SLOW_TRAINING, cwd=project, env=env)
    assert statuses(resumed.stdout)["2.1"] == "succeeded", resumed.stdout
    after = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert after["run_id"] == run_id and after["status"] == "succeeded"
    assert after["phases"]["2.1"]["attempts"] == 2
    # The new job took up the store's checkpoint, not step 0...
    (second_job,) = (remote / "jobs").glob(f"{run_id}-2.1-2")
    events = job_events(second_job)
    restored = [e for e in events if e["event"] == "checkpoint restored from the store"]
    assert restored and restored[0]["step"] > 0, [e["event"] for e in events]
    assert "resuming" in [e["event"] for e in events]
    # ...and ended where the uninterrupted run did, byte for byte, with every instance gone.
    assert ArtifactStore.open(store_url).resolve("scaled_vfn").files == expected.files
    assert fake_vast.live() == []
    renters = [i for i in fake_vast.created() if i.id not in rented_before]
    assert [i.label for i in renters][-2:] == [f"voltx-{run_id}-2.1"] * 2
    print(
        f"reference {referenced - began:.1f} s (2.1 limit {limit_s:.1f} s), stopped run "
        f"{stopped_at - referenced:.1f} s, resumed run {time.monotonic() - stopped_at:.1f} s"
    )
