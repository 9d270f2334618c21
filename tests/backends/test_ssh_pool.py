"""Several SSH hosts as one pool, against the real loopback sshd.

Two "hosts" reach the same sshd under two names (``127.0.0.1`` and ``localhost``, each with its
host key recorded) and declare different resources: a small one (1 core, 1 GB RAM, no GPU) and a
larger one (2 cores, 4 GB RAM, 1 GPU, declared: nothing runs on it). The jobs are shell
commands, so placement, pinning, refusal and re-attachment are seen without the worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import ssh_fixtures
from ssh_fixtures import SSHServer, known_hosts_line

from _support import statuses, subprocess_env
from voltx.backend import JobHandle, JobRequest, JobState, PhaseSlot
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx.store import ArtifactStore
from voltx.testing.backend_contract import (
    BackendContract,
    read_whole_log,
    sh,
    wait_finished,
    wait_until,
)
from voltx_backends.ssh import SSHBackend, SSHPoolBackend, SSHSettings, ssh_backend
from voltx_backends.ssh import backend as ssh_backend_module

pytestmark = pytest.mark.integration

sshd_server = ssh_fixtures.sshd_server

SMALL = Resources(cpu_cores=1, ram_gb=1.0, disk_gb=0.0)
# More RAM than the small host has: only the large one holds it.
LARGE_ONLY = Resources(cpu_cores=1, ram_gb=2.0, disk_gb=0.0)
# Reads the cores this job may run on, as the kernel sees it.
ALLOWED_CPUS = "grep Cpus_allowed_list /proc/self/status; sleep 2"


@pytest.fixture(scope="module")
def pool_settings(sshd_server: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> SSHSettings:
    folder = tmp_path_factory.mktemp("ssh-pool")
    known = folder / "known_hosts"
    # The second name of the same server needs its host key recorded under that name too.
    aliased = same_server_as(sshd_server, "localhost")
    known.write_text(
        known_hosts_line(sshd_server, sshd_server.folder / "host_key.pub")
        + known_hosts_line(aliased, sshd_server.folder / "host_key.pub")
    )
    settings = sshd_server.settings(folder / "remote", known_hosts=str(known))
    del settings["host"]
    settings["hosts"] = [
        {"host": "127.0.0.1", "cpu_cores": 1, "gpus": 0, "ram_gb": 1.0},
        {"host": "localhost", "cpu_cores": 2, "gpus": 1, "ram_gb": 4.0, "dollars_per_hour": 2.0},
    ]
    return SSHSettings.from_options(settings)


def same_server_as(server: SSHServer, host: str) -> SSHServer:
    """`server` under another name (for its known_hosts line)."""
    return SSHServer(folder=server.folder, port=server.port, user=server.user, host=host)


@pytest.fixture(scope="module")
def pool(pool_settings: SSHSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    backend = ssh_backend(tmp_path_factory.mktemp("pool-work"), settings=pool_settings)
    assert isinstance(backend, SSHPoolBackend)
    yield backend
    backend.close()


handles = ssh_fixtures.handles


def submit(
    pool: SSHPoolBackend, handles: list[JobHandle], command: str, resources: Resources
) -> Any:
    request = JobRequest(f"pool-{uuid.uuid4().hex[:12]}", sh(command), resources=resources)
    handle = pool.submit(request)
    handles.append(handle)
    return handle


def allowed_cpus(handle: JobHandle) -> str:
    wait_finished(handle)
    log = read_whole_log(handle).decode()
    return log.split("Cpus_allowed_list:", 1)[1].split()[0]


# --- Settings -----------------------------------------------------------------------------


def test_one_host_form_still_makes_the_one_host_backend(sshd_server: SSHServer) -> None:
    backend = ssh_backend(None, **sshd_server.settings(Path("/tmp/unused")))
    assert type(backend) is SSHBackend


def test_host_and_hosts_together_are_refused(sshd_server: SSHServer) -> None:
    with pytest.raises(BackendError, match="not both"):
        SSHSettings.from_options({"host": "a", "hosts": [{"host": "b"}]})
    with pytest.raises(BackendError, match="more than once"):
        SSHSettings.from_options({"hosts": [{"host": "b"}, {"host": "b"}]})
    with pytest.raises(BackendError, match="host is required"):
        SSHSettings.from_options({})


def test_a_project_file_lists_hosts_and_a_bad_entry_is_named_by_its_path(tmp_path: Path) -> None:
    from voltx.errors import ConfigError
    from voltx.plugins import registry
    from voltx.project import load_project

    path = tmp_path / "voltx.toml"
    path.write_text(
        "[backends.ssh]\n"
        'user = "me"\n'
        'hosts = [{ host = "cpu-box", cpu_cores = 192, gpus = 0, ram_gb = 512 },\n'
        '         { host = "gpu-box", port = 2222, gpus = 1, dollars_per_hour = 1.2 }]\n'
    )
    settings = load_project(path, registry()).backend_settings["ssh"]
    pool = ssh_backend(tmp_path, settings=settings)
    assert isinstance(pool, SSHPoolBackend)
    assert [host.destination for host in pool.hosts] == ["me@cpu-box", "me@gpu-box:2222"]
    assert pool.hosts[0].settings.cpu_cores == 192 and pool.hosts[1].dollars_per_hour == 1.2
    path.write_text('[backends.ssh]\nhosts = [{ host = "a" }, { host = "b", cpu_core = 4 }]\n')
    with pytest.raises(ConfigError) as error:
        load_project(path, registry())
    assert any("backends.ssh.hosts[1].cpu_core: unknown key" in p for p in error.value.problems)


# --- Capacity, placement and pinning ------------------------------------------------------


def test_capacity_is_the_sum_of_the_hosts(pool: SSHPoolBackend) -> None:
    capacity = pool.capacity()
    assert (capacity.cpu_cores, capacity.ram_gb, capacity.gpus) == (3, 5.0, 1)


def test_a_job_goes_to_the_host_whose_resources_fit_it(
    pool: SSHPoolBackend, handles: list[JobHandle]
) -> None:
    small = submit(pool, handles, "echo small", SMALL)
    large = submit(pool, handles, "echo large", LARGE_ONLY)
    assert small.host == pool.hosts[0].destination
    assert large.host == pool.hosts[1].destination
    assert wait_finished(small).state is JobState.SUCCEEDED
    assert wait_finished(large).state is JobState.SUCCEEDED
    assert read_whole_log(large) == b"large\n"


def test_two_jobs_that_fit_one_host_run_there_together_each_on_its_cores(
    pool: SSHPoolBackend, handles: list[JobHandle]
) -> None:
    first = submit(pool, handles, ALLOWED_CPUS, LARGE_ONLY)
    second = submit(pool, handles, ALLOWED_CPUS, LARGE_ONLY)
    assert first.host == second.host == pool.hosts[1].destination
    # Both started at once (neither waits for the other) with shares that do not overlap.
    assert first.status().state is JobState.RUNNING
    assert second.status().state is JobState.RUNNING
    assert (first.share.cpus, second.share.cpus) == ((0,), (1,))
    assert {allowed_cpus(first), allowed_cpus(second)} == {"0", "1"}


def test_a_job_without_room_waits_and_starts_when_a_share_is_free(
    pool: SSHPoolBackend, handles: list[JobHandle]
) -> None:
    busy = [submit(pool, handles, "sleep 1", LARGE_ONLY) for _ in range(2)]
    waiting = submit(pool, handles, "echo late", LARGE_ONLY)
    assert waiting.host is None
    assert waiting.status().state is JobState.RUNNING  # waiting, as far as the scheduler sees
    assert wait_finished(waiting).state is JobState.SUCCEEDED
    assert waiting.host == pool.hosts[1].destination
    assert all(wait_finished(handle).state is JobState.SUCCEEDED for handle in busy)


def test_the_job_gets_its_share_of_gpus(pool: SSHPoolBackend, handles: list[JobHandle]) -> None:
    gpu = Resources(gpus=1, cpu_cores=1, ram_gb=0.5, disk_gb=0.0)
    handle = submit(pool, handles, 'echo "gpus=$CUDA_VISIBLE_DEVICES"', gpu)
    cpu = submit(pool, handles, 'echo "gpus=$CUDA_VISIBLE_DEVICES"', SMALL)
    assert handle.host == pool.hosts[1].destination
    wait_finished(handle)
    wait_finished(cpu)
    assert read_whole_log(handle) == b"gpus=0\n"
    assert read_whole_log(cpu) == b"gpus=\n"  # a CPU job never takes GPU 0 by default


def test_each_host_is_bootstrapped_once(
    pool_settings: SSHSettings,
    tmp_path: Path,
    handles: list[JobHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The install itself is the one-host backend's (tested there); here only who asks for it.
    installs: list[str] = []

    def install(transport: Any, *_args: Any, **_kwargs: Any) -> bool:
        installs.append(transport.target.destination)
        return True

    monkeypatch.setattr(ssh_backend_module, "prepare", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(ssh_backend_module, "install", install)
    settings = attrs.evolve(pool_settings, bootstrap=True, remote_root=str(tmp_path / "remote"))
    pool = ssh_backend(tmp_path / "work", settings=settings)
    try:
        for resources in (SMALL, LARGE_ONLY, LARGE_ONLY, SMALL):
            handles.append(
                pool.submit(
                    JobRequest(f"boot-{uuid.uuid4().hex[:8]}", sh("true"), resources=resources)
                )
            )
        assert sorted(installs) == sorted(host.destination for host in pool.hosts)
    finally:
        for handle in handles:
            wait_finished(handle)
        pool.close()


# --- Preflight and plans ------------------------------------------------------------------


def test_preflight_refuses_a_phase_no_single_host_holds_in_one_line(
    pool: SSHPoolBackend,
) -> None:
    problems = pool.preflight(
        {"0.3": SMALL, "2.1": LARGE_ONLY, "9.9": Resources(gpus=2, ram_gb=1.0, disk_gb=0.0)}
    )
    assert len(problems) == 1
    assert problems[0].startswith("phase 9.9 needs 2 GPU(s)")
    assert "no single host" in problems[0] and "\n" not in problems[0]
    # GPUs declared without nvidia-smi on the host have no known memory: none is claimed.
    assert "1 GPU(s), 2 cores, 4 GB RAM" in problems[0]
    with pytest.raises(BackendError, match="no single host"):
        pool.submit(JobRequest("too-big", sh("true"), resources=Resources(gpus=2)))


def test_plan_says_which_host_each_phase_goes_to(pool: SSHPoolBackend) -> None:
    slots = [
        PhaseSlot("0.3", SMALL, 0.0, 1.0),
        PhaseSlot("2.1", Resources(gpus=1, ram_gb=2.0, disk_gb=0.0), 0.0, 2.0),
        PhaseSlot("4.1", LARGE_ONLY, 2.0, 3.0),
    ]
    lines = pool.machine_plan(slots)
    small, large = pool.hosts
    runs = {line.split(" (")[0].strip(): line.split(" runs ")[-1] for line in lines[1:]}
    assert runs == {small.destination: "0.3", large.destination: "2.1, 4.1"}
    assert pool.quote(LARGE_ONLY).dollars_per_hour == 2.0


# --- After an orchestrator crash ----------------------------------------------------------


def test_a_new_backend_attaches_to_the_job_on_its_host(
    pool: SSHPoolBackend, pool_settings: SSHSettings, tmp_path: Path, handles: list[JobHandle]
) -> None:
    handle = submit(pool, handles, "sleep 1; echo attached", LARGE_ONLY)
    ref = handle.ref
    assert ref["host"] == pool.hosts[1].destination
    fresh = ssh_backend(tmp_path, settings=pool_settings)
    try:
        again = fresh.attach(ref)
        assert again.host == pool.hosts[1].destination
        # The re-attached job still holds its share: a new job goes beside it, not onto it.
        beside = fresh.reserve("probe", LARGE_ONLY)
        assert beside is not None and beside[1].cpus != again.share.cpus
        fresh.release("probe")
        assert wait_finished(again).state is JobState.SUCCEEDED
        assert read_whole_log(again) == b"attached\n"
    finally:
        fresh.close()


def test_a_job_that_started_after_its_ref_was_recorded_is_found(
    pool: SSHPoolBackend, pool_settings: SSHSettings, handles: list[JobHandle]
) -> None:
    busy = [submit(pool, handles, "sleep 1", LARGE_ONLY) for _ in range(2)]
    waiting = submit(pool, handles, "echo late", LARGE_ONLY)
    ref = waiting.ref  # what the scheduler records: no host yet
    assert ref["host"] is None
    wait_until(lambda: bool(waiting.status()) and waiting.host is not None, "the job to start")
    fresh = ssh_backend(pool.work_dir, settings=pool_settings)
    try:
        again = fresh.attach(ref)
        assert again.host == pool.hosts[1].destination
        assert wait_finished(again).state is JobState.SUCCEEDED
    finally:
        fresh.close()
    for handle in busy:
        wait_finished(handle)


# --- A whole run -------------------------------------------------------------------------


@pytest.mark.slow
def test_voltx_run_spreads_the_phases_over_the_pool(
    pool_settings: SSHSettings, example_site: Path, tmp_path: Path
) -> None:
    """`voltx plan` and `voltx run` on the pool, with a folder store staged to each host."""
    project = tmp_path / "project"
    project.mkdir()
    shared = {
        "user": pool_settings.user,
        "identity_file": pool_settings.identity_file,
        "known_hosts": pool_settings.known_hosts,
        "remote_root": str(tmp_path / "remote"),
        "bootstrap": False,
        "python": sys.executable,
        "forward_env": ["PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_HOME", "VOLTX_CACHE_DIR"],
    }
    hosts = ", ".join(
        f'{{ host = "{e.host}", port = {pool_settings.port}, cpu_cores = {e.cpu_cores}, '
        f"ram_gb = {e.ram_gb} }}"
        for e in pool_settings.hosts
    )
    lines = ["[backends.ssh]", *(f"{k} = {json.dumps(v)}" for k, v in shared.items())]
    (project / "voltx.toml").write_text("\n".join([*lines, f"hosts = [{hosts}]"]) + "\n")
    env = subprocess_env(example_site)

    def voltx(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "voltx", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"voltx {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    plan = voltx("plan", "ex.report", "--backend", "ssh")
    small, large = (
        f"{pool_settings.user}@{e.host}:{pool_settings.port}" for e in pool_settings.hosts
    )
    # The small host has one core: of ex.lines and ex.tokens, which run together, one goes to
    # the larger host.
    assert f"{small} (1 cores, 1 GB RAM) runs ex.corpus, ex.lines, ex.report" in plan, plan
    assert f"{large} (2 cores, 4 GB RAM) runs ex.tokens" in plan, plan
    run = voltx("run", "ex.report", "--backend", "ssh")
    assert set(statuses(run).values()) == {"succeeded"}, run
    store = ArtifactStore.open(str(project / ".voltx"))
    store.verify("ex_report")
    # The ledger's job refs name the host each job ran on: both were used.
    refs = [p.read_text() for p in (project / ".voltx").rglob("*") if p.is_file()]
    assert any(f'"host": "{large}"' in text for text in refs if '"job_dir"' in text)
    assert any(f'"host": "{small}"' in text for text in refs if '"job_dir"' in text)


# --- The one-host form keeps the backend contract -----------------------------------------


class TestOneHostFormContract(BackendContract):
    jobs_run_locally = True

    @pytest.fixture
    def backend(
        self, sshd_server: SSHServer, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Any]:
        root = tmp_path_factory.mktemp("one-host")
        backend = ssh_backend(root / "work", **sshd_server.settings(root / "remote"))
        yield backend
        backend.close()


class TestPoolContract(BackendContract):
    """The pool keeps the contract too: its jobs run pinned, through the same job folders."""

    jobs_run_locally = True

    @pytest.fixture
    def backend(self, pool: SSHPoolBackend) -> SSHPoolBackend:
        return pool
