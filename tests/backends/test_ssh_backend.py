"""The SSH backend against a real OpenSSH sshd on 127.0.0.1.

The host is this machine, so the shared backend contract runs with its process-group checks on;
the rest covers what only SSH has: a launch that returns at once, re-attaching to a log across a
dropped connection, a restarted sshd, the per-host session limit, the shared connection's socket,
host keys, secrets kept off command lines, the bootstrap, and `voltx run --backend ssh` end to end
with a folder store staged to the host and back.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ssh_fixtures
from ssh_fixtures import SSHServer, dependency_folder, known_hosts_line, preseed_host_venv

from _support import EXAMPLE, subprocess_env
from voltx.backend import JobHandle, JobRequest, JobState
from voltx.errors import BackendError
from voltx.job_document import JobDocument
from voltx.store import ArtifactStore
from voltx.testing.backend_contract import (
    BackendContract,
    read_whole_log,
    sh,
    wait_finished,
    wait_for_log,
    wait_until,
)
from voltx_backends.ssh import HostKeyError, SSHBackend, SSHTarget, SSHTransport
from voltx_backends.ssh import bootstrap as host_bootstrap
from voltx_backends.ssh.transport import shell_path

pytestmark = pytest.mark.integration

# The real sshd, started once per session (tests/backends/ssh_fixtures.py).
sshd_server = ssh_fixtures.sshd_server


@pytest.fixture(scope="module")
def remote_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder on the "host" (this machine) that holds the jobs of the shared backend."""
    return tmp_path_factory.mktemp("ssh-host") / "remote"


@pytest.fixture(scope="module")
def backend(sshd_server: SSHServer, remote_root: Path) -> Iterator[SSHBackend]:
    """One backend for the module: tests share its connection, as a run's phases do."""
    backend = SSHBackend(work_dir=remote_root.parent / "work", **sshd_server.settings(remote_root))
    yield backend
    backend.close()


@pytest.fixture
def own_backend(sshd_server: SSHServer, tmp_path: Path) -> Iterator[SSHBackend]:
    """A backend of the test's own, for tests that close or break its connection."""
    backend = SSHBackend(work_dir=tmp_path / "work", **sshd_server.settings(tmp_path / "remote"))
    yield backend
    backend.close()


handles = ssh_fixtures.handles


def submit(
    backend: SSHBackend, handles: list[JobHandle], argv: tuple[str, ...], **fields: Any
) -> JobHandle:
    handle = backend.submit(JobRequest(f"ssh-{uuid.uuid4().hex[:12]}", argv, **fields))
    handles.append(handle)
    return handle


class TestSSHBackendContract(BackendContract):
    # The "host" is this machine: the suite may look at and signal the job's processes.
    jobs_run_locally = True

    @pytest.fixture
    def backend(self, backend: SSHBackend) -> SSHBackend:
        return backend


# --- Launching and re-attaching ---


def test_launch_returns_at_once_while_the_job_runs(
    backend: SSHBackend, handles: list[JobHandle]
) -> None:
    backend.transport.run("true")  # the connection is up: what is timed is the launch alone
    started = time.monotonic()
    handle = submit(backend, handles, sh("sleep 5; echo finished"))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"launching took {elapsed:.1f} s for a 5 s job"
    assert handle.status().state is JobState.RUNNING
    assert handle.read_file("exit_code") is None


def _master_pid(transport: SSHTransport) -> int:
    check = subprocess.run(
        [*transport.ssh_argv("-O", "check"), "--", transport.target.host],
        capture_output=True,
        text=True,
        timeout=10,
    )
    # "Master running (pid=1234)"
    return int(check.stderr.split("pid=")[1].split(")")[0])


def test_log_reattached_from_an_offset_across_dropped_connections(
    backend: SSHBackend, handles: list[JobHandle], sshd_server: SSHServer, remote_root: Path
) -> None:
    # Thirty lines, a pause until the test says go (a file in the job folder: the host is this
    # machine), thirty more.
    lines = 'while [ $i -lt {} ]; do echo "line $i of the job"; i=$((i+1)); sleep 0.02; done'
    script = "; ".join(
        ["i=0", lines.format(30), "while [ ! -f go ]; do sleep 0.1; done", lines.format(60)]
    )
    expected = b"".join(f"line {i} of the job\n".encode() for i in range(60))
    handle = submit(backend, handles, sh(script))
    wait_for_log(handle, b"line 3 ")

    # A follower like `voltx logs -f` over its own ssh, killed mid-stream: the job goes on.
    follower = subprocess.Popen(
        [*backend.transport.ssh_argv(), "--", "127.0.0.1", f"tail -c +1 -F {handle.job_dir}/log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert follower.stdout is not None
    assert follower.stdout.read(10) == expected[:10]
    follower.kill()
    follower.wait()

    pieces: list[bytes] = []
    offset = 0
    for _ in range(2):
        data, offset = handle.read_log(offset)
        pieces.append(data)
        # Drop the shared connection under the reader: the next read opens a new one.
        os.kill(_master_pid(backend.transport), signal.SIGKILL)
        assert handle.status().state is JobState.RUNNING
    Path(handle.job_dir, "go").touch()
    # A new orchestrator (a new process, say) re-attaches from the ref and the offset it kept.
    ref = json.loads(json.dumps(handle.ref))
    other = SSHBackend(**sshd_server.settings(remote_root))
    try:
        again = other.attach(ref)
        assert wait_finished(again).state is JobState.SUCCEEDED
        while True:
            data, offset = again.read_log(offset)
            if not data:
                break
            pieces.append(data)
    finally:
        other.close()
    assert b"".join(pieces) == expected
    assert offset == len(expected)


def test_job_survives_an_sshd_restart(
    backend: SSHBackend, handles: list[JobHandle], sshd_server: SSHServer
) -> None:
    # The job waits for a file that the test creates once sshd is back (the host is this machine).
    handle = submit(
        backend, handles, sh("echo before; while [ ! -f go ]; do sleep 0.1; done; echo after")
    )
    wait_for_log(handle, b"before")
    sshd_server.stop()
    try:
        down = handle.status()
        assert down.state is JobState.RUNNING, down
        assert "unreachable" in down.detail
        with pytest.raises(BackendError):
            handle.read_log(0)
    finally:
        sshd_server.start()
    Path(handle.job_dir, "go").touch()
    assert wait_finished(handle).state is JobState.SUCCEEDED
    assert read_whole_log(handle) == b"before\nafter\n"


def test_more_commands_than_sessions_all_succeed(backend: SSHBackend, remote_root: Path) -> None:
    # sshd refuses an 11th session on one connection (MaxSessions 10); voltx allows 8 at once.
    slots = remote_root / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    script = f'd={slots}/$$; mkdir "$d"; ls {slots} | wc -l; sleep 0.5; rmdir "$d"; echo done'
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: backend.transport.run(script), range(12)))
    assert [r.returncode for r in results] == [0] * 12
    assert all(r.text.split()[-1] == "done" for r in results)
    assert not any(r.stderr for r in results), [r.stderr for r in results]
    assert max(int(r.text.split()[0]) for r in results) <= 8


def test_close_ends_the_shared_connection(own_backend: SSHBackend) -> None:
    own_backend.transport.run("true")
    socket_path = own_backend.transport.control_path
    assert socket_path is not None and socket_path.exists()
    master = _master_pid(own_backend.transport)
    own_backend.close()
    assert not socket_path.exists()
    assert not socket_path.parent.exists()
    wait_until(lambda: not _alive(master), "the ssh master to exit")


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which a container's init may never reap, does not)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line[stat_line.rindex(")") + 2] not in "ZX"


# --- Host keys ---


def test_changed_host_key_is_refused(
    sshd_server: SSHServer, remote_root: Path, tmp_path: Path
) -> None:
    impostor = tmp_path / "impostor_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_line(sshd_server, impostor.with_suffix(".pub")))
    backend = SSHBackend(**sshd_server.settings(remote_root, known_hosts=str(known)))
    try:
        with pytest.raises(HostKeyError, match="CHANGED") as caught:
            backend.capacity()
        assert "ssh-keygen -R" in str(caught.value)
    finally:
        backend.close()


def test_unknown_host_key_is_refused_under_strict_checking(
    sshd_server: SSHServer, remote_root: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.touch()
    backend = SSHBackend(**sshd_server.settings(remote_root, known_hosts=str(empty)))
    try:
        with pytest.raises(HostKeyError, match="not in"):
            backend.capacity()
        assert empty.read_text() == ""
    finally:
        backend.close()


def test_accept_new_pins_the_first_key_and_refuses_another(
    sshd_server: SSHServer, tmp_path: Path
) -> None:
    pinned = tmp_path / "pins" / "known_hosts-instance-1"
    pinned.parent.mkdir()
    target = SSHTarget(
        host=sshd_server.host,
        port=sshd_server.port,
        user=sshd_server.user,
        identity_file=str(sshd_server.client_key),
        known_hosts=str(pinned),
        strict_host_key_checking="accept-new",
    )
    transport = SSHTransport(target)
    try:
        assert transport.run("echo pinned").text == "pinned\n"
        assert len(pinned.read_text().splitlines()) == 1
    finally:
        transport.close()
    impostor = tmp_path / "impostor_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    pinned.write_text(known_hosts_line(sshd_server, impostor.with_suffix(".pub")))
    transport = SSHTransport(target)
    try:
        with pytest.raises(HostKeyError, match="CHANGED"):
            transport.run("true")
    finally:
        transport.close()


def test_host_key_checking_cannot_be_turned_off(sshd_server: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="strict_host_key_checking"):
        SSHBackend(**sshd_server.settings(tmp_path, strict_host_key_checking="no"))


# --- Secrets ---


def _command_lines() -> list[bytes]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return lines


def test_secret_in_the_job_env_stays_off_command_lines_and_out_of_files(
    backend: SSHBackend, handles: list[JobHandle], remote_root: Path, sshd_server: SSHServer
) -> None:
    secret = f"sk-planted-{uuid.uuid4().hex}"
    seen: list[bytes] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.extend(line for line in _command_lines() if secret.encode() in line)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        handle = submit(
            backend,
            handles,
            sh('printf %s "$VOLTX_TEST_API_KEY" | sha256sum; sleep 1; echo done'),
            env={"VOLTX_TEST_API_KEY": secret, "VOLTX_JOB_SECRETS": json.dumps({"token": secret})},
        )
        wait_for_log(handle, b"  -\n")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
        assert wait_finished(handle).state is JobState.SUCCEEDED
    finally:
        done.set()
        watcher.join()
    # The job did get the value: its digest is in the log, the value itself is not.
    log = read_whole_log(handle)
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in log
    assert secret.encode() not in log
    assert secret.encode() not in ps
    assert not seen, "the secret appeared on a command line"
    assert secret.encode() not in sshd_server.log_file.read_bytes()
    # On the host: only in files nobody else can read, and the job's env file is gone.
    assert not Path(handle.job_dir, "env").exists()
    for path in remote_root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} holds the secret with mode {mode:o}"


# --- Stores ---


def test_object_store_url_passes_through_to_the_host(
    backend: SSHBackend, handles: list[JobHandle]
) -> None:
    job = JobDocument(run_id="run-1", phase_id="p", store="s3://bucket/prefix", fingerprint="f")
    handle = submit(backend, handles, sh("cat job.json"), files={"job.json": job.to_json()})
    assert wait_finished(handle).state is JobState.SUCCEEDED
    assert json.loads(read_whole_log(handle))["store"] == "s3://bucket/prefix"
    assert handle.ref["stage_back"] is None  # the host reads and writes the store itself


def test_memory_store_is_refused(backend: SSHBackend) -> None:
    job = JobDocument(run_id="run-1", phase_id="p", store="memory://voltx-test", fingerprint="f")
    request = JobRequest("ssh-memory", sh("true"), files={"job.json": job.to_json()})
    with pytest.raises(BackendError, match="this process only"):
        backend.submit(request)


# --- Transfers and capacity ---


@pytest.mark.parametrize("method", ["rsync", "tar"])
def test_put_and_get_copy_trees_both_ways(
    sshd_server: SSHServer, tmp_path: Path, method: str
) -> None:
    if method == "rsync" and shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (apt-get install rsync)")
    source = tmp_path / "source"
    (source / "blobs" / "ab").mkdir(parents=True)
    (source / "blobs" / "ab" / "one").write_bytes(os.urandom(3000))
    (source / "manifest.json").write_text('{"a": 1}')
    (source / "not-sent").write_text("left behind")
    settings = sshd_server.settings(tmp_path / "remote", transfer=method)
    backend = SSHBackend(**settings)
    try:
        remote = f"{tmp_path}/remote/deep/store"
        backend.transport.put(source, remote, ["blobs/ab/one", "manifest.json"])
        back = tmp_path / "back"
        backend.transport.get(remote, back, ["blobs", "manifest.json"])
    finally:
        backend.close()
    assert sorted(p.name for p in Path(remote).iterdir()) == ["blobs", "manifest.json"]
    assert (back / "blobs" / "ab" / "one").read_bytes() == (
        source / "blobs" / "ab" / "one"
    ).read_bytes()
    assert (back / "manifest.json").read_text() == '{"a": 1}'


def test_remote_paths_keep_the_home_folder_and_quote_the_rest() -> None:
    assert shell_path("~") == '"$HOME"'
    assert shell_path("~/.voltx/a b") == "\"$HOME\"/'.voltx/a b'"
    assert shell_path("/srv/x;rm") == "'/srv/x;rm'"
    with pytest.raises(BackendError):
        SSHTransport(SSHTarget(host="h")).put(Path("."), "/srv/with space", [])
    with pytest.raises(BackendError):
        SSHTransport(SSHTarget(host="h")).get("/srv", Path("."), ["../escape"])
    with pytest.raises(BackendError):
        SSHTarget(host="-oProxyCommand=evil")


def test_capacity_is_read_from_the_host(backend: SSHBackend) -> None:
    capacity = backend.capacity()
    assert capacity.cpu_cores == len(os.sched_getaffinity(0))
    assert capacity.ram_gb > 0.1
    assert capacity.disk_gb > 0.0
    assert backend.capacity() == capacity  # probed once, then remembered


# --- Bootstrap and a whole run ---


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A $VOLTX_CACHE_DIR whose built wheels the module's tests share."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def voltx_host(
    sshd_server: SSHServer, tmp_path_factory: pytest.TempPathFactory, cache_home: Path
) -> dict[str, Any]:
    """A host root whose venv the bootstrap filled, and the settings that reach it.

    The host is this machine, and its "package index" must not be the network: the venv is
    pre-seeded with voltx's dependencies (links to the ones installed here), and pip runs with
    --no-index. The wheels of voltx-core, voltx-backends and the example plugin are built and
    installed for real; voltx-phases is left out (it would pull in torch).
    """
    folder = tmp_path_factory.mktemp("voltx-host")
    root = folder / "root"
    settings = sshd_server.settings(
        root,
        bootstrap=True,
        python=getattr(sys, "_base_executable", sys.executable),
        packages=["voltx-core", "voltx-backends"],
        plugins=[str(EXAMPLE)],
        pip_args=["--no-index"],
    )
    wheels = cache_home / "ssh-wheels"
    shipment = host_bootstrap.prepare(settings["packages"], settings["plugins"], wheels)
    preseed_host_venv(root / "venv", dependency_folder(folder / "deps", list(shipment.wheels)))
    backend = SSHBackend(**settings)
    try:
        first = host_bootstrap.install(
            backend.transport, str(root), settings["python"], shipment, pip_args=["--no-index"]
        )
    finally:
        backend.close()
    return {"root": root, "settings": settings, "first_install": first, "shipment": shipment}


def test_bootstrap_installs_once_then_skips(
    voltx_host: dict[str, Any], cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTX_CACHE_DIR", str(cache_home))
    assert voltx_host["first_install"] is True
    backend = SSHBackend(**voltx_host["settings"])
    try:
        assert backend.bootstrap() is False  # the marker names the same wheels
    finally:
        backend.close()
    python = Path(voltx_host["root"], "venv", "bin", "python")
    check = subprocess.run(
        [str(python), "-c", "import voltx, voltx_example_textstats; print(voltx.__file__)"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    # voltx runs from the installed wheel, not from this checkout.
    assert check.stdout.startswith(str(voltx_host["root"]))
    marker = json.loads(Path(voltx_host["root"], "venv", host_bootstrap.MARKER_FILE).read_text())
    assert sorted(marker["wheels"]) == sorted(w.name for w in voltx_host["shipment"].wheels)


def _voltx(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"voltx {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _statuses(stdout: str) -> dict[str, str]:
    """phase id -> status, from the table `voltx run` prints."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("succeeded", "skipped", "failed", "blocked"):
            rows[parts[0]] = parts[1]
    return rows


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


@pytest.mark.slow
def test_voltx_run_on_the_ssh_backend_stages_a_folder_store(
    voltx_host: dict[str, Any], example_site: Path, cache_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    lines = ["[backends.ssh]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in voltx_host["settings"].items()]
    (project / "voltx.toml").write_text("\n".join(lines) + "\n")
    # The wheels the fixture built are found in the cache instead of built again; the host's
    # marker names them, so the run's bootstrap is skipped.
    env = subprocess_env(example_site, VOLTX_CACHE_DIR=str(cache_home))

    # The corpus is made here, so the ssh run has an input to push to the host.
    _voltx(project, env, "run", "ex.corpus", "--backend", "local")
    store = ArtifactStore.open(str(project / ".voltx"))
    corpus = store.ref("ex_corpus")
    assert corpus is not None

    first = _voltx(project, env, "run", "ex.report", "--backend", "ssh")
    assert _statuses(first.stdout) == {
        "ex.corpus": "skipped",
        "ex.lines": "succeeded",
        "ex.tokens": "succeeded",
        "ex.report": "succeeded",
    }, first.stdout + first.stderr
    for name in ("ex_token_counts", "ex_line_stats", "ex_report"):
        artifact = store.resolve(name)
        assert artifact.lineage["fingerprint"], name
        store.verify(name)
    remote_store = Path(voltx_host["root"], "store")
    assert (remote_store / "manifests" / f"{corpus}.json").exists()  # the input was pushed
    report = store.get("ex_report", tmp_path / "report")
    assert any(report.rglob("*.md"))

    # The fingerprint records came back too: a second run skips everything.
    again = _voltx(project, env, "run", "ex.report", "--backend", "ssh")
    assert set(_statuses(again.stdout).values()) == {"skipped"}, again.stdout
