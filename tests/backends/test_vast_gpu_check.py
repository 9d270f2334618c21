"""The machine check after an instance comes up: its GPUs, their memory and CUDA, before the job.

Each fake instance shows its offer's GPUs through a fake ``nvidia-smi``; `lie_about_gpus` makes a
machine advertise more than its containers see. A machine short of what the job needs is
destroyed and the job runs on another, as for an instance that dies while loading.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
import structlog
from fake_vast import FakeVast, quick_settings

from voltx.backend import JobRequest, JobState
from voltx.spec import Resources
from voltx.testing.backend_contract import read_whole_log, wait_finished
from voltx_backends.ssh._scripts import HostInfo, parse_probe, probe
from voltx_backends.vast import VastBackend
from voltx_backends.vast.machine import machine_problems
from voltx_backends.vast.settings import VastSettings

# A fresh fake Vast API per test (tests/backends/fake_vast.py).
fake_vast = fakes.fake_vast

DEADLINE_S = 30.0
ONE_GPU_16_GB = Resources(gpus=1, gpu_memory_gb=16)


@pytest.fixture
def make_backend(tmp_path: Path, fake_vast: FakeVast) -> Iterator[Callable[..., VastBackend]]:
    made: list[VastBackend] = []

    def make(**overrides: Any) -> VastBackend:
        # One instance per job: the check runs on each new instance, pooled or not.
        settings = quick_settings(tmp_path / "remote", **{"pool": False, **overrides})
        backend = VastBackend(work_dir=tmp_path / "work", **settings)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def where(resources: Resources) -> JobRequest:
    """A job that prints the label of the container it runs in."""
    script = 'echo "ran in $VAST_CONTAINERLABEL"'
    return JobRequest(f"gc-{uuid.uuid4().hex[:10]}", ("sh", "-c", script), resources=resources)


def replaced_once(fake: FakeVast, log: bytes, bad_machine: int) -> None:
    """The first instance (on `bad_machine`) was destroyed, the second ran the job, none live."""
    first, second = fake.created()
    assert (first.machine_id, first.actual_status) == (bad_machine, "destroyed")
    assert second.machine_id != bad_machine
    assert f"ran in C.{second.id}".encode() in log
    assert f"C.{first.id}".encode() not in log
    assert fake.max_live == 1  # destroyed before the replacement was rented
    assert fake.live() == []


def mismatch_warnings(logs: list[dict[str, Any]]) -> list[str]:
    return [
        str(entry["error"])
        for entry in logs
        if entry.get("event") == "instance is short of what the job needs; replacing it"
    ]


@pytest.mark.integration
def test_gpus_with_less_memory_than_offered_are_replaced(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.lie_about_gpus(101, gpu_ram_mib=8192)  # advertises 24564 MiB
    with structlog.testing.capture_logs() as logs:
        handle = make_backend().submit(where(ONE_GPU_16_GB))
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    replaced_once(fake_vast, read_whole_log(handle), bad_machine=101)
    (reason,) = mismatch_warnings(logs)
    assert "machine 101" in reason
    assert "expected at least 16000 MiB" in reason and "found 8192 MiB" in reason


@pytest.mark.integration
def test_cuda_older_than_min_cuda_is_replaced(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.lie_about_gpus(101, cuda=11.8)  # advertises 12.4
    with structlog.testing.capture_logs() as logs:
        handle = make_backend(min_cuda=12.1).submit(where(ONE_GPU_16_GB))
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    replaced_once(fake_vast, read_whole_log(handle), bad_machine=101)
    (reason,) = mismatch_warnings(logs)
    assert "expected CUDA 12.1 or newer, found CUDA 11.8" in reason


@pytest.mark.integration
def test_a_cpu_only_phase_is_not_checked(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.lie_about_gpus(101, num_gpus=0, cuda=11.0)
    handle = make_backend(min_cuda=12.1).submit(where(Resources()))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.machine_id == 101
    assert f"ran in C.{instance.id}".encode() in read_whole_log(handle)
    assert fake_vast.live() == []


@pytest.mark.integration
def test_when_every_machine_is_short_the_job_fails_with_the_reasons(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    for machine in (101, 102, 103):
        fake_vast.lie_about_gpus(machine, num_gpus=0)
    handle = make_backend(max_replacements=2).submit(where(ONE_GPU_16_GB))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.FAILED
    assert "expected 1 GPU(s), found 0" in status.detail
    assert [i.machine_id for i in fake_vast.created()] == [101, 102, 103]
    assert fake_vast.live() == []


# -- the probe and the comparison, without a server ------------------------------------------


def test_the_probe_reads_gpu_memory_and_the_cuda_version(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--query-gpu*) echo 24564; echo 24564 ;;\n'
        '*) echo "| NVIDIA-SMI 550.54.14  Driver Version: 550.54.14  CUDA Version: 12.10  |" ;;\n'
        "esac\n"
    )
    smi.chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{fake_bin}:/usr/bin:/bin"}
    output = subprocess.run(
        ["sh", "-c", probe(str(tmp_path / "root"))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = parse_probe(output)
    assert info.gpu_memories_gb == (24564 / 1024, 24564 / 1024)
    assert info.cuda == "12.10"


def host(mib: tuple[int, ...], cuda: str = "12.4") -> HostInfo:
    return HostInfo(
        home="/root",
        root="/root/.voltx",
        cpu_cores=8,
        ram_gb=64.0,
        disk_gb=100.0,
        gpu_memories_gb=tuple(m / 1024 for m in mib),
        has_setsid=True,
        cuda=cuda,
    )


def test_machine_problems_name_what_was_expected_and_found() -> None:
    settings = VastSettings(min_cuda=12.1)
    two_big = Resources(gpus=2, gpu_memory_gb=24)
    assert machine_problems(host((24564, 24564)), two_big, settings) == []
    assert machine_problems(host((24564,)), two_big, settings) == ["expected 2 GPU(s), found 1"]
    assert machine_problems(host((24564, 8192)), two_big, settings) == [
        "expected at least 24000 MiB of memory per GPU (24 GB), found 8192 MiB"
    ]
    # Versions compare as numbers, part by part: 12.10 is newer than 12.9.
    assert (
        machine_problems(host((81920,), "12.10"), Resources(gpus=1), VastSettings(min_cuda=12.9))
        == []
    )
    assert machine_problems(host((81920,), ""), Resources(gpus=1), settings) == [
        "expected CUDA 12.1 or newer, found no CUDA version"
    ]
    # nvidia-smi's "[N/A]" memory is unknown, not short; a CPU-only job is never checked.
    assert machine_problems(host((0,)), Resources(gpus=1, gpu_memory_gb=40), settings) == []
    assert machine_problems(host((), ""), Resources(), settings) == []
