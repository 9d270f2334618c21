"""A staged job's checkpoints survive the loss of its host (SSH backend, folder store here).

The job runs `ckpt.steps` (tests/plugins/checkpoint_steps.py): one checkpoint a step, a "stage"
file beside them every few steps, and the step it started from in its output. Its handle copies
new checkpoints back into the store here while it runs; a new attempt on another host (another
remote root on the loopback sshd) gets the newest one pushed before it starts, and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ssh_fixtures
import structlog
from ssh_fixtures import SSHServer

from _support import TEST_PLUGINS
from voltx.backend import JobRequest, JobState
from voltx.checkpoints import CheckpointManager
from voltx.errors import BackendError
from voltx.job_document import JobDocument
from voltx.store import ArtifactStore
from voltx.testing.backend_contract import wait_finished, wait_until
from voltx_backends.ssh import SSHBackend, SSHJobHandle, TransportError, checkpoint_mirror

pytestmark = pytest.mark.integration

sshd_server = ssh_fixtures.sshd_server

PHASE = "ckpt.steps"
STEPS = 30
FINAL_TOTAL = sum(range(STEPS))  # what an uninterrupted run computes


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(str(tmp_path / "store"))


@pytest.fixture
def fingerprint() -> str:
    return uuid.uuid4().hex * 2


@pytest.fixture
def backends(sshd_server: SSHServer) -> Iterator[list[SSHBackend]]:
    made: list[SSHBackend] = []
    yield made
    for backend in made:
        backend.close()


def host(
    backends: list[SSHBackend], server: SSHServer, remote_root: Path, **settings: Any
) -> SSHBackend:
    """A "host": the loopback sshd with a remote root of its own."""
    options = {"python": sys.executable, "checkpoint_pull_s": 0.1, **settings}
    backend = SSHBackend(**server.settings(remote_root, **options))
    backends.append(backend)
    return backend


def submit(
    backend: SSHBackend, store: ArtifactStore, fingerprint: str, **config: Any
) -> SSHJobHandle:
    job = JobDocument(
        run_id="test-run",
        phase_id=PHASE,
        attempt=1,
        store=store.url,
        profile=None,
        config={"steps": STEPS, "sleep_s": 0.05, **config},
        inputs={},
        fingerprint=fingerprint,
        devices=(),
    )
    env = {
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(TEST_PLUGINS), os.environ.get("PYTHONPATH")])
        ),
        "VOLTX_PLUGINS": "checkpoint_steps",
        "VOLTX_HOME": os.environ["VOLTX_HOME"],
        "VOLTX_CACHE_DIR": os.environ["VOLTX_CACHE_DIR"],
    }
    request = JobRequest(
        job_id=f"ckpt-{uuid.uuid4().hex[:12]}",
        argv=(backend.python, "-m", "voltx", "worker", "job.json"),
        files={"job.json": job.to_json()},
        env=env,
    )
    return backend.submit(request)


def local_checkpoints(store: ArtifactStore, fingerprint: str) -> CheckpointManager:
    folder = store.local_dir("checkpoints", PHASE, fingerprint[:16])
    assert folder is not None
    return CheckpointManager(folder)


def result_of(store: ArtifactStore, tmp_path: Path) -> dict[str, Any]:
    folder = store.get("step_count", tmp_path / f"out-{uuid.uuid4().hex[:6]}")
    result: dict[str, Any] = json.loads((folder / "result.json").read_text())
    return result


def test_a_new_host_resumes_from_the_checkpoint_pulled_before_the_host_was_lost(
    sshd_server: SSHServer,
    backends: list[SSHBackend],
    store: ArtifactStore,
    fingerprint: str,
    tmp_path: Path,
) -> None:
    first = host(backends, sshd_server, tmp_path / "host-a")
    handle = submit(first, store, fingerprint)
    assert handle.ref["checkpoints"] == f"checkpoints/{PHASE}/{fingerprint[:16]}"

    def pulled_a_few() -> bool:
        assert handle.status().state is JobState.RUNNING
        latest = local_checkpoints(store, fingerprint).latest()
        return latest is not None and latest.step >= 6

    wait_until(pulled_a_few, "a few checkpoints copied back while the job runs")
    # The host is lost: sshd and every connection go, and the worker dies with it.
    pid = int(Path(handle.job_dir, "pid").read_text())
    sshd_server.stop()
    try:
        os.killpg(pid, signal.SIGKILL)
        # A pull that was under way when the host went finishes or fails before we look.
        pulling = handle._checkpoint_pull
        if pulling is not None:
            pulling.join(10)
        assert handle.status().state is JobState.RUNNING  # unreachable, not broken
    finally:
        sshd_server.start()
    manager = local_checkpoints(store, fingerprint)
    latest = manager.latest()
    assert latest is not None and latest.step >= 6
    assert len(manager.all()) <= checkpoint_mirror.KEEP
    assert (manager.root / "stages" / "stage-005.txt").read_text() == "stage 5\n"
    assert store.local_root is not None
    on_host = tmp_path / "host-a" / "store" / manager.root.relative_to(store.local_root)
    host_latest = CheckpointManager(on_host).latest()
    assert host_latest is not None and host_latest.step >= latest.step

    # The next attempt, on a new host, starts from the step after the one that came back.
    second = host(backends, sshd_server, tmp_path / "host-b")
    retry = submit(second, store, fingerprint)
    assert wait_finished(retry).state is JobState.SUCCEEDED
    result = result_of(store, tmp_path)
    assert result["start"] == latest.step + 1
    assert result["total"] == FINAL_TOTAL
    assert "stage-005.txt" in result["stages"]  # the files beside the checkpoints came too


@pytest.mark.parametrize("transfer", ["auto", "tar"])
def test_a_finished_job_leaves_its_newest_checkpoints_here(
    sshd_server: SSHServer,
    backends: list[SSHBackend],
    store: ArtifactStore,
    fingerprint: str,
    tmp_path: Path,
    transfer: str,
) -> None:
    # No pull while it runs: only the one at the end.
    backend = host(
        backends, sshd_server, tmp_path / "host", checkpoint_pull_s=3600, transfer=transfer
    )
    handle = submit(backend, store, fingerprint, sleep_s=0.0)
    assert wait_finished(handle).state is JobState.SUCCEEDED
    manager = local_checkpoints(store, fingerprint)
    steps = [checkpoint.step for checkpoint in manager.all()]
    assert steps == [STEPS - 3, STEPS - 2, STEPS - 1]
    assert (manager.root / "latest").read_text() == f"step-{STEPS - 1:09d}"
    assert sorted(p.name for p in (manager.root / "stages").iterdir()) == [
        f"stage-{step:03d}.txt" for step in range(0, STEPS, 5)
    ]
    assert not list(manager.root.glob(".staging-*"))
    assert result_of(store, tmp_path)["start"] == 0


def test_no_push_when_the_host_has_a_newer_checkpoint(
    sshd_server: SSHServer, backends: list[SSHBackend], store: ArtifactStore, tmp_path: Path
) -> None:
    backend = host(backends, sshd_server, tmp_path / "host")
    local = tmp_path / "here"
    remote = tmp_path / "host" / "on-host"
    for folder, steps in ((local, (1, 2)), (remote, (5,))):
        manager = CheckpointManager(folder)
        for step in steps:
            with manager.save(step) as staging:
                (staging / "weights.bin").write_bytes(bytes([step]) * 100)
    transport, python = backend.transport, backend.python
    assert checkpoint_mirror.push(transport, python, local, str(remote)) is None
    assert CheckpointManager(remote).latest().step == 5  # type: ignore[union-attr]

    newer = CheckpointManager(local)
    with newer.save(9) as staging:
        (staging / "weights.bin").write_bytes(b"9" * 100)
    assert checkpoint_mirror.push(transport, python, local, str(remote)) == 9
    latest = CheckpointManager(remote).latest()
    assert latest is not None and latest.step == 9
    assert (latest.path / "weights.bin").read_bytes() == b"9" * 100


def test_a_failing_pull_is_a_warning_and_the_job_runs_on(
    sshd_server: SSHServer,
    backends: list[SSHBackend],
    store: ArtifactStore,
    fingerprint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise TransportError("ssh to the host failed: Connection refused", "host")

    monkeypatch.setattr(checkpoint_mirror, "pull", broken)
    backend = host(backends, sshd_server, tmp_path / "host")
    with structlog.testing.capture_logs() as logs:
        handle = submit(backend, store, fingerprint, sleep_s=0.02)
        status = wait_finished(handle)
    assert status.state is JobState.SUCCEEDED, status
    warnings = [e for e in logs if e["event"] == "checkpoints not copied from the host"]
    assert warnings and all("Connection refused" in e["error"] for e in warnings)
    assert result_of(store, tmp_path)["total"] == FINAL_TOTAL


def test_a_bad_checkpoint_folder_in_a_ref_is_refused(
    sshd_server: SSHServer, backends: list[SSHBackend], tmp_path: Path
) -> None:
    backend = host(backends, sshd_server, tmp_path / "host")
    ref = {
        "backend": "ssh",
        "host": backend.destination,
        "job_id": "job-1",
        "job_dir": f"{tmp_path}/host/jobs/job-1",
        "stage_back": "file:///somewhere",
        "checkpoints": "checkpoints/../../etc",
    }
    with pytest.raises(BackendError, match="bad checkpoints"):
        backend.attach(ref)
