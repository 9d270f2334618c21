"""The contract every voltx backend passes: a pytest suite to subclass.

A backend's test module subclasses `BackendContract` (its name must start with ``Test`` for pytest
to collect it) and provides a ``backend`` fixture that returns a fresh `Backend`::

    import pytest
    from voltx.testing.backend_contract import BackendContract

    from my_plugin import MyBackend


    class TestMyBackendContract(BackendContract):
        jobs_run_locally = False  # jobs run on another machine: skip the process-group checks

        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(work_dir=tmp_path)
            yield backend
            backend.close()

The suite runs small ``sh -c`` jobs, so the job's host needs a POSIX shell, ``sleep`` and
``printf``. It checks exit codes, that stdout and stderr land in the log, that argv, env and files
reach the job, that submit returns at once, that a log read from an offset returns exactly the
rest, that `JobHandle.ref` finds the job again through `Backend.attach`, and (only where jobs run on
this machine, `jobs_run_locally`) that cancel stops the whole process group and that a job killed
behind the backend's back is LOST rather than FAILED. The checks poll with a deadline instead of
sleeping, and the whole suite takes a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from voltx.backend import (
    Backend,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    process_group_alive,
)
from voltx.errors import BackendError

DEADLINE_S = 20.0
POLL_S = 0.05

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = DEADLINE_S) -> T:
    """Call `probe` until it returns something other than None; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(POLL_S)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Call `condition` until it is true; fail after `timeout_s`."""
    wait_for(lambda: True if condition() else None, what, timeout_s)


def wait_finished(handle: JobHandle, timeout_s: float = DEADLINE_S) -> JobStatus:
    """The job's status once it has finished."""

    def finished() -> JobStatus | None:
        status = handle.status()
        return status if status.state.finished else None

    return wait_for(finished, f"job {handle.job_id} to finish", timeout_s)


def wait_for_log(handle: JobHandle, expected: bytes, timeout_s: float = DEADLINE_S) -> bytes:
    """The job's log once it contains `expected`."""

    def log_with_expected() -> bytes | None:
        log = read_whole_log(handle)
        return log if expected in log else None

    return wait_for(log_with_expected, f"{expected!r} in the log of {handle.job_id}", timeout_s)


def read_whole_log(handle: JobHandle) -> bytes:
    """Everything the log holds now, however many reads that takes."""
    chunks: list[bytes] = []
    offset = 0
    while True:
        data, offset = handle.read_log(offset)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def sh(command: str) -> tuple[str, ...]:
    """The argv that runs `command` with the job host's POSIX shell."""
    return ("sh", "-c", command)


class BackendContract:
    """Subclass this and provide a ``backend`` fixture (see the module docstring)."""

    # True when a job's processes run on the machine that runs the tests, so that the suite can
    # look at and signal them directly (the local backend; an SSH backend tested on loopback).
    jobs_run_locally: bool = True

    _handles: list[JobHandle]

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError(
            f"{type(self).__name__} must provide a `backend` fixture returning the Backend to test"
        )

    @pytest.fixture(autouse=True)
    def _cancel_leftover_jobs(self, backend: Backend) -> Iterator[None]:
        # A failed assertion must not leave a `sleep 300` running after the test session.
        self._handles = []
        yield
        for handle in self._handles:
            if not handle.status().state.finished:
                handle.cancel(grace_s=1.0)

    def submit(self, backend: Backend, argv: tuple[str, ...], **fields: Any) -> JobHandle:
        """Submit a job with a fresh id; it is cancelled after the test if still running."""
        request = JobRequest(job_id=f"contract-{uuid.uuid4().hex[:12]}", argv=argv, **fields)
        handle = backend.submit(request)
        self._handles.append(handle)
        return handle

    def require_local_jobs(self) -> None:
        if not self.jobs_run_locally:
            pytest.skip("this backend's jobs run on another machine")

    def job_process_group(self, handle: JobHandle) -> int:
        """The job's process group: the wrapper leads its own, so it is the pid it wrote."""
        pid = wait_for(lambda: handle.read_file("pid"), f"the pid file of {handle.job_id}")
        return int(pid)

    # --- Exit codes ---

    def test_exit_code_zero_is_succeeded(self, backend: Backend) -> None:
        status = wait_finished(self.submit(backend, sh("exit 0")))
        assert status.state is JobState.SUCCEEDED
        assert status.exit_code == 0

    @pytest.mark.parametrize("code", [3, 255])
    def test_nonzero_exit_code_is_failed_with_that_code(self, backend: Backend, code: int) -> None:
        status = wait_finished(self.submit(backend, sh(f"exit {code}")))
        assert status.state is JobState.FAILED
        assert status.exit_code == code

    def test_cancel_of_a_finished_job_changes_nothing(self, backend: Backend) -> None:
        handle = self.submit(backend, sh("echo done"))
        status = wait_finished(handle)
        handle.cancel(grace_s=1.0)
        assert handle.status() == status
        assert read_whole_log(handle) == b"done\n"

    # --- What reaches the job, and what comes back ---

    def test_stdout_and_stderr_both_land_in_the_log(self, backend: Backend) -> None:
        handle = self.submit(backend, sh("echo to-stdout; echo to-stderr >&2; echo stdout-again"))
        assert wait_finished(handle).state is JobState.SUCCEEDED
        assert read_whole_log(handle) == b"to-stdout\nto-stderr\nstdout-again\n"

    def test_argv_reaches_the_job_unchanged(self, backend: Backend) -> None:
        # Each of these breaks a command line that was joined or quoted carelessly.
        awkward = ("two words", "it's", '"double"', "$HOME", "`id`", "line\nbreak", "*", "")
        handle = self.submit(backend, ("printf", "%s|", *awkward))
        assert wait_finished(handle).state is JobState.SUCCEEDED
        assert read_whole_log(handle) == ("|".join(awkward) + "|").encode()

    def test_env_reaches_the_job(self, backend: Backend) -> None:
        value = "a value with spaces, 'quotes' and $HOME"
        handle = self.submit(
            backend, sh('printf %s "$VOLTX_CONTRACT_VALUE"'), env={"VOLTX_CONTRACT_VALUE": value}
        )
        assert wait_finished(handle).state is JobState.SUCCEEDED
        assert read_whole_log(handle) == value.encode()

    def test_files_are_written_into_the_job_folder(self, backend: Backend) -> None:
        # Not ``job.json``: that name is reserved for the worker's job document, which backends
        # read (`voltx.job_document`); any other file reaches the job as it is.
        files = {"input.json": b'{"step": 1}\n', "data.bin": bytes(range(256))}
        handle = self.submit(
            backend, sh("cat input.json && printf written > result.txt"), files=files
        )
        assert wait_finished(handle).state is JobState.SUCCEEDED
        assert read_whole_log(handle) == files["input.json"]
        assert handle.read_file("data.bin") == files["data.bin"]
        assert handle.read_file("result.txt") == b"written"
        assert handle.read_file("absent.txt") is None

    def test_read_file_rejects_names_outside_the_job_folder(self, backend: Backend) -> None:
        handle = self.submit(backend, sh("exit 0"))
        for name in ("../escape", "sub/file", "..", "/etc/passwd", ""):
            with pytest.raises(BackendError):
                handle.read_file(name)

    # --- Detached start and re-attach ---

    def test_submit_returns_while_the_job_runs(self, backend: Backend) -> None:
        started = time.monotonic()
        handle = self.submit(backend, sh("sleep 5"))
        elapsed = time.monotonic() - started
        # A behaviour check, not a benchmark: submit must not wait for the job to end.
        assert elapsed < 2.0, f"submit took {elapsed:.1f} s for a 5 s job"
        assert handle.status().state is JobState.RUNNING
        handle.cancel(grace_s=2.0)
        assert wait_finished(handle).state in {JobState.FAILED, JobState.LOST}

    def test_read_log_from_an_offset_returns_exactly_the_rest(self, backend: Backend) -> None:
        handle = self.submit(backend, sh("echo first; sleep 1; echo second"))

        def first_output() -> tuple[bytes, int] | None:
            data, offset = handle.read_log(0)
            return (data, offset) if data else None

        head, offset = wait_for(first_output, "the first log line")
        assert offset == len(head)
        assert wait_finished(handle).state is JobState.SUCCEEDED
        # Whatever the first read caught, the read from its offset brings exactly the remainder.
        tail, end = handle.read_log(offset)
        assert head + tail == b"first\nsecond\n"
        assert end == len(head + tail)
        assert handle.read_log(end) == (b"", end)
        assert handle.read_log(3) == (b"st\nsecond\n", end)

    def test_attach_finds_the_same_job(self, backend: Backend) -> None:
        handle = self.submit(backend, sh("echo attached; sleep 300"))
        wait_for_log(handle, b"attached")
        # The run ledger keeps the ref as JSON; it must survive the round trip.
        ref = json.loads(json.dumps(handle.ref))
        again = backend.attach(ref)
        assert again.job_id == handle.job_id
        assert again.status().state is JobState.RUNNING
        assert again.read_log() == handle.read_log()
        again.cancel(grace_s=2.0)
        status = wait_finished(handle)
        assert status.state is not JobState.SUCCEEDED
        assert again.status() == status
        assert again.read_log() == handle.read_log()

    # --- Stopping, on purpose or not (jobs on this machine only) ---

    def test_cancel_stops_the_whole_process_group(self, backend: Backend) -> None:
        self.require_local_jobs()
        handle = self.submit(backend, sh("sleep 300 & echo started; wait"))
        wait_for_log(handle, b"started")
        pgid = self.job_process_group(handle)
        assert process_group_alive(pgid)
        handle.cancel(grace_s=5.0)
        wait_until(
            lambda: not process_group_alive(pgid),
            f"process group {pgid} (the job and its background sleep) to end",
        )
        assert wait_finished(handle).state in {JobState.FAILED, JobState.LOST}

    def test_job_killed_behind_the_backends_back_is_lost(self, backend: Backend) -> None:
        self.require_local_jobs()
        handle = self.submit(backend, sh("echo started; sleep 300"))
        wait_for_log(handle, b"started")
        # SIGKILL, which nothing can trap: the wrapper dies without writing an exit code, as it
        # would in an OOM kill or a host that vanished.
        os.killpg(self.job_process_group(handle), signal.SIGKILL)
        status = wait_finished(handle)
        assert status.state is JobState.LOST, status
        assert status.exit_code is None
