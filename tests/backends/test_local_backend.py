"""The local backend: the shared backend contract, and what only a local machine can show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from voltx.backend import JobHandle, JobRequest, JobState, process_group_alive
from voltx.errors import BackendError
from voltx.testing.backend_contract import (
    BackendContract,
    read_whole_log,
    sh,
    wait_finished,
    wait_for,
    wait_for_log,
    wait_until,
)
from voltx_backends import LocalBackend, _jobs

pytestmark = pytest.mark.integration


class TestLocalBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalBackend:
        return LocalBackend(work_dir=tmp_path)


@pytest.fixture
def handles() -> Iterator[list[JobHandle]]:
    """Jobs a test started; any still running at the end is cancelled."""
    started: list[JobHandle] = []
    yield started
    for handle in started:
        handle.cancel(grace_s=1.0)


def submit(
    backend: LocalBackend, handles: list[JobHandle], argv: tuple[str, ...], **fields
) -> JobHandle:
    handle = backend.submit(JobRequest(f"local-{uuid.uuid4().hex[:12]}", argv, **fields))
    handles.append(handle)
    return handle


# --- Capacity ---


def test_capacity_honours_options(tmp_path):
    backend = LocalBackend(tmp_path, cpu_cores=3, gpus=2, gpu_memory_gb=24.0, ram_gb=16.0)
    capacity = backend.capacity()
    assert (capacity.cpu_cores, capacity.gpus, capacity.gpu_memory_gb, capacity.ram_gb) == (
        3,
        2,
        24.0,
        16.0,
    )
    assert capacity.disk_gb > 0


def test_capacity_reads_the_machine_without_options(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    capacity = LocalBackend(tmp_path / "not-yet-created").capacity()
    assert capacity.cpu_cores >= 1
    assert capacity.ram_gb > 0
    assert capacity.disk_gb > 0
    assert (capacity.gpus, capacity.gpu_memory_gb) == (0, 0.0)


def fake_nvidia_smi(folder: Path, output: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\n")
    script.chmod(0o755)


def test_capacity_counts_gpus_with_nvidia_smi(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "81559\\n40960\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    capacity = LocalBackend(tmp_path).capacity()
    assert capacity.gpus == 2
    assert capacity.gpu_memory_gb == 40.0  # the smaller GPU decides what fits on one


def test_capacity_counts_only_gpus_our_environment_lets_us_see(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "1024\\n1024\\n1024\\n1024\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert LocalBackend(tmp_path).capacity().gpus == 2


def test_negative_option_is_rejected(tmp_path):
    with pytest.raises(BackendError, match="gpus"):
        LocalBackend(tmp_path, gpus=-1)


# --- GPU pinning ---

PRINT_CUDA = sh('printf %s "${CUDA_VISIBLE_DEVICES-unset}"')


def job_output(backend: LocalBackend, handles, argv, **fields) -> bytes:
    handle = submit(backend, handles, argv, **fields)
    assert wait_finished(handle).state is JobState.SUCCEEDED
    return read_whole_log(handle)


def test_job_sees_only_its_devices(tmp_path, monkeypatch, handles):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    backend = LocalBackend(tmp_path, gpus=4)
    assert job_output(backend, handles, PRINT_CUDA, devices=(1, 3)) == b"1,3"
    # A CPU job on a GPU machine is shown no GPU at all, rather than GPU 0 by default.
    assert job_output(backend, handles, PRINT_CUDA, devices=()) == b""


def test_devices_index_into_our_own_visible_devices(tmp_path, monkeypatch, handles):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    backend = LocalBackend(tmp_path, gpus=2)
    assert job_output(backend, handles, PRINT_CUDA, devices=(1,)) == b"6"


def test_without_gpus_the_environment_is_left_alone(tmp_path, monkeypatch, handles):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    backend = LocalBackend(tmp_path, gpus=0)
    assert job_output(backend, handles, PRINT_CUDA) == b"unset"


def test_devices_that_do_not_exist_are_rejected(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(BackendError, match="GPUs"):
        LocalBackend(tmp_path, gpus=0).submit(JobRequest("cpu-only", ("true",), devices=(0,)))
    with pytest.raises(BackendError, match=r"\[2\]"):
        LocalBackend(tmp_path, gpus=2).submit(JobRequest("two-gpus", ("true",), devices=(2,)))
    assert not (tmp_path / "jobs").exists()  # rejected before anything was written


# --- The job folder ---


def test_secrets_in_env_are_never_written_to_the_job_folder(tmp_path, handles):
    secret = f"secret-{uuid.uuid4().hex}"
    handle = submit(
        LocalBackend(tmp_path),
        handles,
        sh('test -n "$VOLTX_SECRET" && echo has-secret; sleep 300'),
        env={"VOLTX_SECRET": secret},
        files={"job.json": b"{}"},
    )
    wait_for_log(handle, b"has-secret")
    # Not on the command line either, where ps would show it to every user of the machine.
    pid = int(handle.read_file("pid") or b"0")
    assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    handle.cancel(grace_s=2.0)
    wait_finished(handle)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_heartbeat_is_touched_while_the_job_runs(tmp_path, handles):
    handle = submit(LocalBackend(tmp_path), handles, sh("sleep 300"))
    heartbeat = Path(handle.ref["job_dir"]) / "heartbeat"
    first = wait_for(lambda: heartbeat.stat().st_mtime_ns if heartbeat.exists() else None, "beat")
    wait_until(
        lambda: heartbeat.stat().st_mtime_ns > first,
        "a second heartbeat",
        timeout_s=_jobs.HEARTBEAT_INTERVAL_S * 3,
    )


def test_job_folder_holds_the_protocol_files(tmp_path, handles):
    handle = submit(LocalBackend(tmp_path), handles, sh("echo hi; exit 7"))
    assert wait_finished(handle).exit_code == 7
    assert handle.read_file("exit_code") == b"7\n"
    assert handle.read_file("started_at")
    assert int(handle.read_file("pid") or b"0") > 0
    assert Path(handle.ref["job_dir"]) == tmp_path / "jobs" / handle.job_id


def test_request_files_may_not_replace_protocol_files_or_escape(tmp_path):
    backend = LocalBackend(tmp_path)
    for name in ("run.sh", "exit_code", "../escape", "/abs", "a/../b"):
        with pytest.raises(BackendError):
            backend.submit(JobRequest(f"bad-{uuid.uuid4().hex[:8]}", ("true",), files={name: b""}))


def test_nested_request_files_are_written(tmp_path, handles):
    handle = submit(
        LocalBackend(tmp_path), handles, sh("cat inputs/a.txt"), files={"inputs/a.txt": b"nested"}
    )
    assert wait_finished(handle).state is JobState.SUCCEEDED
    assert read_whole_log(handle) == b"nested"


@pytest.mark.parametrize("job_id", ["", "../up", "has space", "-flag", "a/b"])
def test_unusable_job_ids_are_rejected(tmp_path, job_id):
    with pytest.raises(BackendError, match="job id"):
        LocalBackend(tmp_path).submit(JobRequest(job_id, ("true",)))


def test_a_job_id_is_used_once(tmp_path, handles):
    backend = LocalBackend(tmp_path)
    handles.append(backend.submit(JobRequest("once", ("true",))))
    with pytest.raises(BackendError, match="already exists"):
        backend.submit(JobRequest("once", ("true",)))


def test_cancel_before_the_wrapper_wrote_its_pid(tmp_path):
    # Cancel straight after submit, as a Ctrl-C might: the pid file may not exist yet.
    handle = LocalBackend(tmp_path).submit(JobRequest("early", sh("sleep 300")))
    handle.cancel(grace_s=2.0)
    assert wait_finished(handle, timeout_s=5.0).state in {JobState.FAILED, JobState.LOST}


def test_a_folder_without_pid_is_lost_once_the_start_grace_is_over(tmp_path):
    job_dir = tmp_path / "jobs" / "never-started"
    job_dir.mkdir(parents=True)
    (job_dir / "run.sh").write_text("")
    backend = LocalBackend(tmp_path)
    handle = backend.attach({"job_id": "never-started", "job_dir": str(job_dir)})
    assert handle.status().state is JobState.RUNNING  # still starting
    old = (job_dir / "run.sh").stat().st_mtime - _jobs.START_GRACE_S - 1
    os.utime(job_dir / "run.sh", (old, old))
    assert handle.status().state is JobState.LOST


def test_a_reused_pid_does_not_count_as_the_job(tmp_path, handles):
    handle = submit(LocalBackend(tmp_path), handles, sh("exit 0"))
    wait_finished(handle)
    job_dir = Path(handle.ref["job_dir"])
    (job_dir / "exit_code").unlink()
    # Our own pid is alive, but its command line is not this job's wrapper.
    (job_dir / "pid").write_text(f"{os.getpid()}\n")
    assert handle.status().state is JobState.LOST
    handle.cancel(grace_s=0.1)  # and cancel must not signal it


def test_process_check_falls_back_to_ps(monkeypatch, tmp_path, handles):
    handle = submit(LocalBackend(tmp_path), handles, sh("sleep 300"))
    pid = int(wait_for(lambda: handle.read_file("pid"), "pid"))
    assert _jobs.process_has_marker(pid, handle.job_id)
    real_exists = Path.exists
    with monkeypatch.context() as patch:
        # As on macOS: no /proc.
        patch.setattr(
            Path, "exists", lambda self: False if str(self) == "/proc/self" else real_exists(self)
        )
        assert _jobs.process_has_marker(pid, handle.job_id)
        assert not _jobs.process_has_marker(pid, "some-other-job")
        assert process_group_alive(pid)


def test_attach_rejects_refs_it_cannot_use(tmp_path):
    backend = LocalBackend(tmp_path)
    with pytest.raises(BackendError):
        backend.attach({"job_id": "a"})
    with pytest.raises(BackendError):
        backend.attach({"job_id": "a", "job_dir": str(tmp_path / "jobs" / "b")})


# --- Surviving the orchestrator ---

SUBMIT_AND_EXIT = """
import json, sys
from pathlib import Path
from voltx.backend import JobRequest
from voltx_backends import LocalBackend

handle = LocalBackend(Path(sys.argv[1])).submit(
    JobRequest("orphan", ("sh", "-c", "echo from-orphan; sleep 300"))
)
print(json.dumps(handle.ref))
"""

ATTACH_AND_REPORT = """
import json, sys
from pathlib import Path
from voltx_backends import LocalBackend

handle = LocalBackend(Path(sys.argv[1])).attach(json.loads(sys.argv[2]))
print(json.dumps({"state": handle.status().state.value, "log": handle.read_log()[0].decode()}))
"""


def run_python(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]  # the answer; any log lines come before it


def test_job_outlives_the_process_that_started_it(tmp_path):
    # One process submits and exits at once (it must not wait on the job's output), another
    # process finds the job running, and this one stops it.
    ref = json.loads(run_python(SUBMIT_AND_EXIT, str(tmp_path)))
    handle = LocalBackend(tmp_path).attach(ref)
    try:
        wait_for_log(handle, b"from-orphan")
        seen = json.loads(run_python(ATTACH_AND_REPORT, str(tmp_path), json.dumps(ref)))
        assert seen == {"state": "running", "log": "from-orphan\n"}
    finally:
        handle.cancel(grace_s=2.0)
    assert wait_finished(handle).state in {JobState.FAILED, JobState.LOST}
