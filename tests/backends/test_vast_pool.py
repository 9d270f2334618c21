"""The Vast machine pool (``pool = true``) against the fake Vast API: rent once, run many.

Jobs are small ``sh -c`` commands submitted to the backend directly, the way the scheduler does:
a chain is submitted one job after the other, concurrent phases together. Every test ends with no
live instance at the fake, chaos included.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
from fake_vast import FakeVast, quick_settings

from voltx.backend import JobRequest, JobState, UpcomingPhase
from voltx.spec import Resources
from voltx.testing.backend_contract import read_whole_log, wait_finished, wait_for
from voltx_backends.ssh import SSHBackend
from voltx_backends.ssh import backend as ssh_backend
from voltx_backends.vast import VastBackend
from voltx_backends.vast.cli import cmd_machines
from voltx_backends.vast.pool import NEXT_PHASE_GRACE_S

pytestmark = pytest.mark.integration

fake_vast = fakes.fake_vast

DEADLINE_S = 30.0
GPU = Resources(gpus=1, gpu_memory_gb=8, cpu_cores=1, ram_gb=2)
CPU = Resources(cpu_cores=1, ram_gb=2)


@pytest.fixture
def make_backend(tmp_path: Path, fake_vast: FakeVast) -> Iterator[Callable[..., VastBackend]]:
    made: list[VastBackend] = []

    def make(**overrides: Any) -> VastBackend:
        settings = {"pool": True, "pool_gather_s": 0.3, "pool_idle_s": 30.0, **overrides}
        backend = VastBackend(
            work_dir=tmp_path / "work", **quick_settings(tmp_path / "remote", **settings)
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    # Whatever happened in the test, closing leaves nothing rented.
    assert [(i.id, i.label) for i in fake_vast.live()] == []


def sh(script: str, resources: Resources) -> JobRequest:
    return JobRequest(f"vp-{uuid.uuid4().hex[:10]}", ("sh", "-c", script), resources=resources)


# What the job sees of its share: its GPUs and the cores it may run on.
SHOW_SHARE = (
    'echo "gpus=[$CUDA_VISIBLE_DEVICES]"; grep Cpus_allowed_list /proc/self/status; '
    'echo "threads=$OMP_NUM_THREADS"'
)


@pytest.fixture
def installs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """The bootstrap, standing in for voltx's install: it takes 0.5 s and makes the venv (whose
    python is this one). Returns the (start, end) of every install."""
    done: list[tuple[float, float]] = []

    def fake_install(transport: Any, root: str, python: str, *args: Any, **kwargs: Any) -> bool:
        start = time.monotonic()
        time.sleep(0.5)
        venv = Path(root) / "venv" / "bin"
        venv.mkdir(parents=True, exist_ok=True)
        if not (venv / "python").exists():
            (venv / "python").symlink_to(os.path.realpath(python))
        done.append((start, time.monotonic()))
        return True

    monkeypatch.setattr(ssh_backend, "prepare", lambda *args, **kwargs: object())
    monkeypatch.setattr(ssh_backend, "install", fake_install)
    return done


def test_a_chain_of_gpu_jobs_rents_one_instance_and_bootstraps_once(
    fake_vast: FakeVast,
    make_backend: Callable[..., VastBackend],
    installs: list[tuple[float, float]],
) -> None:
    backend = make_backend(bootstrap=True, pool_idle_s=5.0)
    for step in ("4.1", "4.2", "4.3"):
        handle = backend.submit(sh(f"echo phase {step}; {SHOW_SHARE}", GPU))
        status = wait_finished(handle, DEADLINE_S)
        assert status.state is JobState.SUCCEEDED, status
        assert f"phase {step}".encode() in read_whole_log(handle)
        assert b"gpus=[0]" in read_whole_log(handle)
    (instance,) = fake_vast.created()  # one rental for the three
    assert instance.label.endswith("-m1")
    assert len(installs) == 1
    assert len(fake_vast.live()) == 1  # kept for the idle window


def test_uploads_run_beside_the_one_bootstrap_of_a_shared_machine(
    fake_vast: FakeVast,
    make_backend: Callable[..., VastBackend],
    installs: list[tuple[float, float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uploads: list[float] = []

    def stage_ahead(self: SSHBackend, files: Any) -> int:
        uploads.append(time.monotonic())
        return 0

    monkeypatch.setattr(SSHBackend, "stage_ahead", stage_ahead)
    backend = make_backend(bootstrap=True)
    handles = [backend.submit(sh("true", CPU)), backend.submit(sh("true", GPU))]
    for handle in handles:
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    assert len(fake_vast.created()) == 1
    ((start, end),) = installs  # one install for the machine ...
    assert len(uploads) == 2
    # ... and each job's upload ran while it did, not after it.
    assert all(start <= upload < end for upload in uploads)


def test_an_idle_instance_is_destroyed_after_its_window(
    fake_vast: FakeVast,
    make_backend: Callable[..., VastBackend],
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = make_backend(pool_idle_s=1.0)
    first = backend.submit(sh("echo one", GPU))
    assert wait_finished(first, DEADLINE_S).state is JobState.SUCCEEDED
    # Within the window the next job reuses the machine ...
    second = backend.submit(sh("echo two", GPU))
    assert wait_finished(second, DEADLINE_S).state is JobState.SUCCEEDED
    assert len(fake_vast.created()) == 1
    assert first.billing_key == second.billing_key
    # ... and past it the machine is given back, with the backend still open.
    fake_vast.wait_for(lambda: not fake_vast.live(), "the idle instance to go", 10.0)
    third = backend.submit(sh("echo three", GPU))
    assert wait_finished(third, DEADLINE_S).state is JobState.SUCCEEDED
    assert len(fake_vast.created()) == 2
    backend.close()
    # What each machine cost: its prep (rented -> first job), its idle time, at its price.
    first_machine, second_machine = backend.state.machine_records()
    assert first_machine["released"] == "idle" and second_machine["released"] == "closed"
    assert first_machine["jobs_run"] == 2 and second_machine["jobs_run"] == 1
    assert first_machine["prep_s"] > 0 and first_machine["idle_s"] >= 1.0
    price = first_machine["dollars_per_hour"]
    assert price == 0.40  # the cheapest 4090
    idle_dollars = price * first_machine["idle_s"] / 3600
    assert first_machine["idle_dollars"] == pytest.approx(idle_dollars, abs=1e-6)
    cmd_machines(argparse.Namespace(run=None, json=False), backend)
    out = capsys.readouterr().out
    assert first_machine["label"] in out and "2 machine(s)" in out and "of which prep $" in out


def test_an_idle_instance_no_phase_to_come_fits_goes_after_the_grace_not_the_cap(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend(pool_idle_s=120.0)
    # The scheduler's hint: the one phase still to come needs more GPU memory than a 4090 has.
    backend.expect([UpcomingPhase("big", Resources(gpus=1, gpu_memory_gb=80), None)])
    job = backend.submit(sh("echo one", GPU))
    assert wait_finished(job, DEADLINE_S).state is JobState.SUCCEEDED
    ended = time.monotonic()
    fake_vast.wait_for(lambda: not fake_vast.live(), "the idle instance to go", 20.0)
    assert time.monotonic() - ended < 20.0  # NEXT_PHASE_GRACE_S, far below the 120 s cap
    (machine,) = backend.machines()
    assert machine.released == "idle" and machine.idle_s >= NEXT_PHASE_GRACE_S - 0.5


def test_a_cpu_and_a_gpu_job_share_one_instance_each_in_its_share(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend()
    # Each waits (up to a deadline) until the other has started: they must overlap.
    script = (
        "touch $MARK.{me}; i=0; while [ ! -e $MARK.{other} ] && [ $i -lt 200 ]; do "
        "sleep 0.05; i=$((i+1)); done; [ -e $MARK.{other} ] && echo overlapped; " + SHOW_SHARE
    )
    mark = str(Path(fake_vast.root) / "mark")
    cpu = sh(script.format(me="cpu", other="gpu"), CPU)
    gpu = sh(script.format(me="gpu", other="cpu"), GPU)
    cpu = JobRequest(cpu.job_id, cpu.argv, env={"MARK": mark}, resources=CPU)
    gpu = JobRequest(gpu.job_id, gpu.argv, env={"MARK": mark}, resources=GPU)
    handles = [backend.submit(cpu), backend.submit(gpu)]
    assert handles[0].billing_key == handles[1].billing_key  # one machine, paid for once
    for handle in handles:
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.offer["num_gpus"] == 1
    cpu_log, gpu_log = (read_whole_log(h).decode() for h in handles)
    assert "overlapped" in cpu_log and "overlapped" in gpu_log
    # Shares: no GPU for the CPU job, GPU 0 for the other; one core each, different ones
    # (core n of the share is the n-th core this "container" may use).
    allowed = sorted(os.sched_getaffinity(0))
    assert "gpus=[]" in cpu_log and "gpus=[0]" in gpu_log
    assert f"Cpus_allowed_list:\t{allowed[0]}\n" in cpu_log
    assert f"Cpus_allowed_list:\t{allowed[1 % len(allowed)]}\n" in gpu_log
    assert "threads=1" in cpu_log and "threads=1" in gpu_log


def test_preempting_a_shared_instance_loses_both_jobs_and_both_rerun_on_a_new_one(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend()
    handles = [backend.submit(sh("echo up; sleep 60", CPU)), backend.submit(sh("sleep 60", GPU))]
    for handle in handles:
        wait_for(lambda h=handle: h.instance_id, "the job to reach its instance")
    wait_for(lambda: b"up" in read_whole_log(handles[0]) or None, "the job to start")
    (instance,) = fake_vast.created()
    fake_vast.preempt(instance.id)
    for handle in handles:
        assert wait_finished(handle, DEADLINE_S).state is JobState.LOST
    fake_vast.wait_for(lambda: not fake_vast.live(), "the lost instance to be destroyed")
    # The scheduler starts both again: together, on one replacement.
    again = [backend.submit(sh("echo resumed", CPU)), backend.submit(sh("echo resumed", GPU))]
    for handle in again:
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    assert len(fake_vast.created()) == 2
    assert fake_vast.created()[1].id != instance.id


def test_cancel_while_the_pooled_machine_loads_leaves_nothing(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend()
    handles = [backend.submit(sh("sleep 30", CPU)), backend.submit(sh("sleep 30", GPU))]
    fake_vast.wait_for(lambda: fake_vast.created(), "the rental")
    for handle in handles:
        handle.cancel(grace_s=0.5)
        assert handle.status().state is JobState.FAILED
    backend.close()
    assert fake_vast.live() == []


def test_no_offer_fails_the_job_with_the_filters(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    handle = make_backend().submit(sh("true", Resources(gpus=8)))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.FAILED
    assert "no Vast.ai offer matches" in status.detail and "num_gpus" in status.detail
    assert fake_vast.created() == []


def test_a_job_that_does_not_fit_the_planned_machine_swaps_it_for_one_that_holds_both(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    # The cheapest machine for a CPU job: a small card nothing in this test trains on.
    small = dict(fake_vast.offers[5000])
    small.update(id=5200, ask_contract_id=5200, machine_id=301, gpu_name="RTX 3050")
    small.update(gpu_ram=8192, gpu_total_ram=8192, dph_total=0.10, dph_base=0.09)
    fake_vast.offers[5200] = small
    backend = make_backend()
    training = Resources(gpus=1, gpu_memory_gb=16, cpu_cores=1, ram_gb=2)  # not on 8 GB
    handles = [backend.submit(sh("echo cpu", CPU)), backend.submit(sh("echo gpu", training))]
    # Packed: the 4090 alone ($0.40) costs less than the 3050 ($0.10) beside it.
    assert handles[0].billing_key == handles[1].billing_key
    for handle in handles:
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.offer["id"] == 5000


def test_stormy_weather_while_renting_a_shared_machine_leaves_nothing(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    # The cheapest offer vanishes on rent, the next machine's container dies while loading,
    # and the API rate-limits listing and showing instances.
    fake_vast.vanish_offers(5000)
    fake_vast.exit_while_loading(102)
    fake_vast.rate_limit_burst(4, "/api/v1/instances/")
    fake_vast.rate_limit_burst(4, "/api/v0/instances/", json_body=True)
    backend = make_backend()
    handles = [backend.submit(sh("echo cpu", CPU)), backend.submit(sh("echo gpu", GPU))]
    for handle in handles:
        assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    # The dead one went; both jobs ran on the one replacement.
    dead, replacement = fake_vast.created()
    assert dead.machine_id == 102 and dead.destroyed
    assert [i.id for i in fake_vast.live()] == [replacement.id]
