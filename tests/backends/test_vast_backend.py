"""The Vast backend against the fake Vast API, whose instances are real sshd servers.

Jobs here are small ``sh -c`` commands submitted to the backend directly; whole ``voltx run``s
(the scheduler's resubmission, Ctrl-C, a killed orchestrator) are in ``test_vast_runs.py``. Every
test ends with no live instance at the fake: that is the property the backend exists to keep.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
from fake_vast import FakeVast, quick_settings

from voltx.backend import JobRequest, JobState
from voltx.job_document import JobDocument
from voltx.spec import Resources
from voltx.testing.backend_contract import (
    BackendContract,
    read_whole_log,
    wait_finished,
    wait_for,
)
from voltx_backends.vast import OfferQuery, VastBackend
from voltx_backends.vast.backend import job_label

pytestmark = pytest.mark.integration

# A fresh fake Vast API per test (tests/backends/fake_vast.py).
fake_vast = fakes.fake_vast

DEADLINE_S = 30.0


def fast_settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """Settings that make the backend quick against the fake: short polls, no bootstrap."""
    # One instance per job: these tests are about renting and giving back one instance (the
    # pooled path, the default, is tests/backends/test_vast_pool*.py).
    return quick_settings(tmp_path / "remote", **{"pool": False, **overrides})


@pytest.fixture
def make_backend(tmp_path: Path, fake_vast: FakeVast) -> Iterator[Callable[..., VastBackend]]:
    made: list[VastBackend] = []

    def make(**overrides: Any) -> VastBackend:
        backend = VastBackend(work_dir=tmp_path / "work", **fast_settings(tmp_path, **overrides))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def sh(script: str, job_id: str | None = None, **fields: Any) -> JobRequest:
    return JobRequest(job_id or f"vt-{uuid.uuid4().hex[:10]}", ("sh", "-c", script), **fields)


def no_live_instances(fake: FakeVast) -> None:
    """Nothing is rented any more, right now: destroying is part of ending a job, not later."""
    assert [(i.id, i.label, i.actual_status) for i in fake.live()] == []


class TestVastBackendContract(BackendContract):
    """The contract every backend passes, on instances of the fake Vast API.

    Each "instance" is a loopback sshd on this machine (tests/backends/fake_vast.py), so the suite
    may also look at and signal the job's processes.
    """

    jobs_run_locally = True

    @pytest.fixture
    def backend(self, make_backend: Callable[..., VastBackend]) -> VastBackend:
        return make_backend()


def test_happy_path_runs_the_job_and_destroys_the_instance(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend], tmp_path: Path
) -> None:
    backend = make_backend()
    handle = backend.submit(sh("echo hello from vast; echo err >&2; exit 0"))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.SUCCEEDED, status
    assert b"hello from vast" in read_whole_log(handle)
    no_live_instances(fake_vast)
    (instance,) = fake_vast.created()
    assert instance.label == f"voltx-{handle.job_id}"
    # The cheapest offer that passes the default filters (the 1080 is unverified).
    assert instance.offer["id"] == 5000
    assert not list((tmp_path / "work" / "vast" / "known_hosts").glob("vast-*"))
    # What the job left is kept here: the log and status read the same after the instance went.
    again = backend.attach(handle.ref)
    assert again.status() == status
    assert b"hello from vast" in read_whole_log(again)


def test_the_onstart_script_alone_installs_the_run_key(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.ssh_attach_enabled = False
    handle = make_backend().submit(sh("echo via onstart"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert "no_auto_tmux" in instance.body["onstart"]
    assert instance.body["runtype"] == "ssh_direc ssh_proxy"
    assert instance.body["cancel_unavail"] is True
    no_live_instances(fake_vast)


def test_failing_job_is_failed_and_its_instance_destroyed(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    handle = make_backend().submit(sh("echo about to fail; exit 3"))
    status = wait_finished(handle, DEADLINE_S)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert b"about to fail" in read_whole_log(handle)
    no_live_instances(fake_vast)


def test_vanished_offer_moves_on_to_the_next(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.vanish_offers(5000)
    handle = make_backend().submit(sh("true"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.offer["id"] == 5001
    rents = [r for r in fake_vast.requests if r.path.startswith("/api/v0/asks/")]
    assert [(r.path, r.status) for r in rents] == [
        ("/api/v0/asks/5000/", 404),
        ("/api/v0/asks/5001/", 200),
    ]
    no_live_instances(fake_vast)


def test_429_bursts_everywhere_are_waited_out(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    paths = ("/api/v0/bundles/", "/api/v0/asks/", "/api/v1/instances/", "/api/v0/instances/")
    for number, path in enumerate(paths):
        fake_vast.rate_limit_burst(3, path, json_body=number % 2 == 1)
    handle = make_backend().submit(sh("true"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    assert len([r for r in fake_vast.requests if r.status == 429]) == 12
    assert len(fake_vast.created()) == 1
    no_live_instances(fake_vast)


def test_a_gateway_error_on_rent_is_never_a_second_rental(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    # The rental may or may not have happened: voltx looks by label, finds none, and moves on.
    fake_vast.server_errors(1, 502, "/api/v0/asks/")
    fake_vast.server_errors(2, 503, "/api/v0/instances/")
    handle = make_backend().submit(sh("true"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.offer["id"] == 5001
    no_live_instances(fake_vast)


def test_instance_that_exits_while_loading_is_replaced_on_another_machine(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.exit_while_loading(101)
    handle = make_backend().submit(sh("echo second machine"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    first, second = fake_vast.created()
    assert (first.machine_id, first.actual_status) == (101, "destroyed")
    assert second.machine_id != 101
    # The dead one was destroyed before the replacement was rented: never two at once.
    assert fake_vast.max_live == 1
    no_live_instances(fake_vast)


def test_every_machine_dying_fails_the_job_with_the_reasons(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.exit_while_loading(101, 102, 103)
    handle = make_backend(max_replacements=2).submit(sh("true"))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.FAILED
    assert "3 instance(s) died while loading" in status.detail
    assert "container exited with code 1" in status.detail
    assert len(fake_vast.created()) == 3
    no_live_instances(fake_vast)


def test_deadline_destroys_the_instance_and_says_why(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.loading_s = 3600
    handle = make_backend(provision_timeout_s=0.5).submit(sh("true"))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.FAILED
    assert "provision_timeout_s" in status.detail
    assert "Pulling image" in status.detail  # the instance's status_msg
    no_live_instances(fake_vast)


def test_no_matching_offer_names_the_filters(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    handle = make_backend(gpu_name="H100 SXM").submit(sh("true"))
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.FAILED
    assert "no Vast.ai offer matches" in status.detail and "H100 SXM" in status.detail
    assert fake_vast.created() == []


def test_falls_back_to_the_proxy_when_the_direct_port_is_closed(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.broken_direct = True
    handle = make_backend().submit(sh("echo through the proxy"))
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    no_live_instances(fake_vast)


def test_resources_shape_the_search(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    request = sh("true", resources=Resources(gpus=1, gpu_memory_gb=40, cpu_cores=8, ram_gb=32))
    handle = make_backend().submit(request)
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    (instance,) = fake_vast.created()
    assert instance.offer["gpu_name"] == "A100 SXM4"  # the only card with 40 GB
    search = next(r for r in fake_vast.requests if r.path == "/api/v0/bundles/")
    assert search.body["gpu_ram"] == {"gte": 40000}
    assert search.body["cpu_ram"] == {"gte": 32000}
    assert search.body["order"] == [["dph_total", "asc"]]
    no_live_instances(fake_vast)


def test_cancel_while_provisioning_destroys_the_instance(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    fake_vast.loading_s = 3600
    handle = make_backend().submit(sh("true"))
    fake_vast.wait_for(lambda: fake_vast.instances, "the rental")
    assert handle.status().state is JobState.RUNNING
    handle.cancel(grace_s=1.0)
    assert handle.status().state is JobState.FAILED
    no_live_instances(fake_vast)


def test_cancel_during_the_job_stops_it_and_destroys_the_instance(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend], tmp_path: Path
) -> None:
    handle = make_backend().submit(sh("echo started; sleep 60"))
    wait_for(lambda: b"started" in read_whole_log(handle) or None, "the job to start", DEADLINE_S)
    pid = int((tmp_path / "remote" / "jobs" / handle.job_id / "pid").read_text())
    handle.cancel(grace_s=1.0)
    status = handle.status()
    assert status.state is JobState.FAILED
    no_live_instances(fake_vast)
    wait_for(lambda: None if _alive(pid) else True, "the job's process to die", 10)


def test_preempted_instance_makes_the_job_lost_and_is_destroyed(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    handle = make_backend().submit(sh("echo started; sleep 60"))
    wait_for(lambda: b"started" in read_whole_log(handle) or None, "the job to start", DEADLINE_S)
    (instance,) = fake_vast.live()
    fake_vast.preempt(instance.id)
    status = wait_finished(handle, DEADLINE_S)
    assert status.state is JobState.LOST
    assert "exited" in status.detail
    no_live_instances(fake_vast)


def test_close_destroys_everything_still_rented(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend()
    running = backend.submit(sh("echo started; sleep 60"))
    wait_for(lambda: b"started" in read_whole_log(running) or None, "the job", DEADLINE_S)
    fake_vast.loading_s = 3600  # the second one never gets past loading
    backend.submit(sh("true"))
    fake_vast.wait_for(lambda: len(fake_vast.live()) == 2, "two instances")
    backend.close()
    assert fake_vast.live() == []


def test_submit_adopts_an_instance_already_labelled_for_the_job(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    # A previous orchestrator of this run rented the instance and died before using it.
    backend = make_backend()
    request = sh("echo adopted")
    label, run_id = job_label(request)
    _key, public_key = backend.state.run_key(run_id or label)
    query = OfferQuery.build(Resources(), backend.settings.offer_filters())
    offer = backend.client.search_offers(query)[0]
    backend.client.create_instance(
        offer.id, backend.provisioner.create_body(offer, label, public_key)
    )
    handle = backend.submit(request)
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    assert len(fake_vast.created()) == 1
    no_live_instances(fake_vast)


def test_attaching_to_read_takes_nothing_over(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend], tmp_path: Path
) -> None:
    owner = make_backend()
    go = tmp_path / "go"
    handle = owner.submit(sh(f"echo observed; while [ ! -f {go} ]; do sleep 0.1; done; echo done"))
    wait_for(lambda: b"observed" in read_whole_log(handle) or None, "the job", DEADLINE_S)
    lease = tmp_path / "work" / "vast" / "leases" / f"{handle.label}.json"
    original = lease.read_text()

    def lease_held_by(pid: int) -> None:
        data = json.loads(original)
        data.update(pid=pid, pid_start=None)
        lease.write_text(json.dumps(data))

    # Another live process holds the lease, as the orchestrator does while `voltx logs` runs:
    # the reader follows the job but stays an observer, and its close leaves the instance be.
    other = subprocess.Popen(["sleep", "60"])
    try:
        lease_held_by(other.pid)
        observer = make_backend()
        seen = observer.attach(handle.ref)
        assert b"observed" in read_whole_log(seen)
        assert seen.status().state is JobState.RUNNING
        assert seen.owner is False
        observer.close()
        assert len(fake_vast.live()) == 1
    finally:
        other.kill()
        other.wait()
    # The lease's holder is dead (a killed orchestrator): reading the log alone still takes
    # nothing over, so `voltx logs` never destroys a job that a rerun could re-attach to.
    lease_held_by(other.pid)
    reader = make_backend()
    assert b"observed" in read_whole_log(reader.attach(handle.ref))
    reader.close()
    assert len(fake_vast.live()) == 1
    lease.write_text(original)
    go.touch()
    assert wait_finished(handle, DEADLINE_S).state is JobState.SUCCEEDED
    no_live_instances(fake_vast)


def test_reap_destroys_only_voltx_instances_no_live_run_owns(
    fake_vast: FakeVast, make_backend: Callable[..., VastBackend]
) -> None:
    backend = make_backend()
    owned = backend.submit(sh("echo started; sleep 60"))
    wait_for(lambda: b"started" in read_whole_log(owned) or None, "the job", DEADLINE_S)
    orphan = fake_vast.add_instance("voltx-20260101-000000-abcdef-2.1")
    foreign = fake_vast.add_instance("my-own-notebook", offer_id=5002)
    reaper = make_backend()
    assert [i.id for i in reaper.reap(dry_run=True)] == [orphan]
    assert len(fake_vast.live()) == 3
    assert [i.id for i in reaper.reap()] == [orphan]
    assert sorted(i.id for i in fake_vast.live()) == sorted([owned.instance_id, foreign])
    owned.cancel(grace_s=1.0)
    fake_vast.instances[foreign].destroyed = True
    no_live_instances(fake_vast)


def test_job_label_names_run_and_phase() -> None:
    job = JobDocument(
        run_id="20260102-030405-abcdef", phase_id="2.1", attempt=2, store="s3://b", fingerprint="f"
    )
    request = JobRequest("x-2", ("true",), files={"job.json": job.to_json()})
    assert job_label(request) == ("voltx-20260102-030405-abcdef-2.1", "20260102-030405-abcdef")
    assert job_label(JobRequest("plain-job", ("true",))) == ("voltx-plain-job", None)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
