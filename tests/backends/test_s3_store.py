"""The artifact store on s3:// against a real S3-compatible server (moto) on 127.0.0.1.

What is checked: the store's whole behaviour (the core store suites run again on s3://), the
commit protocol (manifests create-only, data without a manifest unseen), multipart uploads,
push and pull between stores, failure of the server mid-upload, the settings, secrets, and a
real ``voltx run`` whose workers read and write the S3 store themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from _support import subprocess_env
from voltx.cli import main as cli_main
from voltx.errors import ArtifactNotFoundError, ConfigError, StoreError
from voltx.store import ArtifactStore
from voltx.store.transfer import transfer
from voltx_backends.s3 import S3Settings, VoltxS3FileSystem, parse_size
from voltx_backends.s3.retry import Backoff, is_transient, retry_async

pytestmark = pytest.mark.integration

MIB = 2**20
TESTS = Path(__file__).resolve().parents[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_key(prefix: str, data: bytes) -> str:
    digest = sha(data)
    return f"{prefix}/blobs/sha256/{digest[:2]}/{digest}"


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- The core store suites, run again on s3:// -------------------------------------------


class S3StoreCase:
    """`tests/core`'s StoreCase for an s3:// store: the store, plus raw access to its objects."""

    kind = "s3"
    local = False

    def __init__(self, s3, prefix: str) -> None:
        self.s3 = s3
        self.prefix = prefix
        self.url = s3.url(prefix)
        self.store = ArtifactStore.open(self.url)

    def snapshot(self) -> dict[str, bytes | None]:
        start = len(self.prefix) + 1
        return {key[start:]: self.s3.read(key) for key in self.s3.keys(self.prefix + "/")}

    def files(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1
        return [key[start:] for key in self.s3.keys(f"{self.prefix}/{prefix}/")]

    def write_raw(self, rel: str, data: bytes) -> None:
        self.s3.client.put_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{rel}", Body=data)

    def read_raw(self, rel: str) -> bytes:
        return self.s3.read(f"{self.prefix}/{rel}")

    def delete_raw(self, rel: str) -> None:
        self.s3.client.delete_object(Bucket=self.s3.bucket, Key=f"{self.prefix}/{rel}")


@pytest.fixture
def store_case(s3) -> S3StoreCase:
    return S3StoreCase(s3, f"suite-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def store(store_case: S3StoreCase) -> ArtifactStore:
    return store_case.store


def _load_suite(name: str) -> ModuleType:
    # Loaded under its own name so that the suite's own collection in tests/core is untouched.
    path = TESTS / "core" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"s3_suite_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs_on_any_store(function: Callable[..., object]) -> bool:
    """A suite test that needs only `store` or `store_case` (not a local or memory one)."""
    parameters = set(inspect.signature(function).parameters)
    marks = getattr(function, "pytestmark", [])
    for mark in marks:
        if mark.name == "parametrize":
            names = mark.args[0]
            parameters -= set(names.split(",") if isinstance(names, str) else names)
    parameters = {p.strip() for p in parameters} - {"tmp_path"}
    return bool(parameters) and parameters <= {"store", "store_case"}


for _suite in ("test_artifact_store", "test_store_gc"):
    for _name, _function in vars(_load_suite(_suite)).items():
        if _name.startswith("test_") and callable(_function) and _runs_on_any_store(_function):
            globals()[f"test_suite_{_suite.removeprefix('test_')}__{_name[5:]}"] = _function


# --- Opening: the tuned filesystem, settings ---------------------------------------------


def test_an_s3_store_opens_with_voltx_tuned_filesystem(s3, monkeypatch):
    monkeypatch.setenv("VOLTX_S3_PART_SIZE", "16MiB")
    monkeypatch.setenv("VOLTX_S3_MAX_CONCURRENCY", "3")
    store = ArtifactStore.open(s3.url("opened"), max_concurrency=5)

    fs = store._backing.fs
    assert isinstance(fs, VoltxS3FileSystem)
    assert fs.settings.part_size == 16 * MIB  # from the environment
    assert fs.settings.max_concurrency == 5  # the storage option wins over it
    assert fs.max_concurrency == 5  # and reaches s3fs
    assert store.url == s3.url("opened")


def test_bad_settings_are_one_store_error_naming_them(s3):
    with pytest.raises(StoreError, match=r"part_sise: unknown setting; did you mean part_size"):
        ArtifactStore.open(s3.url(), part_sise="8MiB")
    with pytest.raises(StoreError, match="part_size must be between 5 MiB and 5 GiB"):
        ArtifactStore.open(s3.url(), part_size="1MiB")


def test_settings_sources_and_sizes(monkeypatch):
    assert parse_size("8MiB") == parse_size("8M") == 8 * MIB
    assert parse_size("1GiB") == 2**30
    assert parse_size(6 * MIB) == 6 * MIB
    with pytest.raises(ValueError, match="expected a size"):
        parse_size("lots")

    environ = {"VOLTX_S3_RETRIES": "7", "VOLTX_S3_CONDITIONAL_WRITES": "false"}
    settings = S3Settings.from_options({"retries": None, "part_size": "64MiB"}, environ)
    assert (settings.retries, settings.conditional_writes, settings.part_size) == (
        7,
        False,
        64 * MIB,
    )
    # A huge file grows the part size to stay within S3's 10,000 parts.
    assert settings.effective_part_size(10_000 * 64 * MIB + 1) > 64 * MIB

    with pytest.raises(ValueError, match="VOLTX_S3_SECRET: unknown setting"):
        S3Settings.from_options({}, {"VOLTX_S3_SECRET": "x"})


def test_keys_given_in_code_are_redacted_from_logs(s3):
    from voltx._logging import redact_text

    secret = f"in-code-{uuid.uuid4().hex}"
    store = ArtifactStore.open(s3.url("keys"), key="testing", secret=secret)
    assert store.names() == []  # moto takes any key
    assert redact_text(f"secret={secret}") == "secret=***"


def test_a_project_table_may_not_hold_keys_unless_it_insists():
    with pytest.raises(ConfigError) as refused:
        S3Settings.from_config({"secret": "abc", "key": "AKIA"}, source="voltx.toml")
    assert "store.secret: credentials in a project file" in str(refused.value)
    assert "abc" not in str(refused.value)

    insisted = S3Settings.from_config(
        {"secret": "abc", "key": "AKIA", "allow_plaintext_credentials": True}
    )
    assert insisted.secret == "abc"
    assert "abc" not in repr(insisted)  # settings print without their secrets


# --- The commit protocol ------------------------------------------------------------------


def test_a_manifest_is_created_once(s3, tmp_path):
    store = ArtifactStore.open(s3.url("once"))
    backing = store._backing
    assert backing.create("manifests/x.json", b"first") is True
    assert backing.create("manifests/x.json", b"second") is False
    assert s3.read("once/manifests/x.json") == b"first"

    # What decides it is the server: a conditional PUT that moto refuses with 412.
    with pytest.raises(FileExistsError):
        backing.fs.pipe_file(f"{s3.bucket}/once/manifests/x.json", b"third", mode="create")

    # The fallback for servers without conditional writes refuses too (by looking first).
    fallback = ArtifactStore.open(s3.url("once"), conditional_writes=False)._backing
    assert fallback.create("manifests/x.json", b"fourth") is False
    assert fallback.create("manifests/y.json", b"new") is True


def test_data_without_a_manifest_is_never_seen(s3, tmp_path):
    prefix = "crash"
    store = ArtifactStore.open(s3.url(prefix))
    kept = store.commit("kept", write_tree(tmp_path / "kept", {"a.txt": b"kept"}), {})
    # A writer that died after its blob and ref but before its manifest.
    ghost = b"ghost data"
    s3.client.put_object(Bucket=s3.bucket, Key=blob_key(prefix, ghost), Body=ghost)
    ref = json.dumps({"name": "ghost", "digest": sha(ghost)})
    s3.client.put_object(Bucket=s3.bucket, Key=f"{prefix}/refs/ghost.json", Body=ref)

    assert [a.name for a in store.list()] == ["kept"]
    assert not store.has("ghost")
    with pytest.raises(ArtifactNotFoundError):
        store.resolve("ghost")
    with pytest.raises(ArtifactNotFoundError):
        store.resolve(sha(ghost))

    report = store.gc()
    assert report.blobs == (f"blobs/sha256/{sha(ghost)[:2]}/{sha(ghost)}",)
    assert blob_key(prefix, ghost) not in s3.keys(prefix)
    assert store.resolve("kept").digest == kept.digest


def test_a_large_blob_goes_up_in_parts_and_comes_back_whole(s3, tmp_path):
    data = os.urandom(64 * MIB)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    store = ArtifactStore.open(s3.url("large"), part_size="8MiB", max_concurrency=4)

    artifact = store.commit("weights", source, {"phase": "test"})

    head = s3.client.head_object(
        Bucket=s3.bucket, Key=blob_key("large", data), ChecksumMode="ENABLED"
    )
    assert head["ETag"].strip('"').endswith("-8")  # 64 MiB in 8 MiB parts
    assert head["ContentLength"] == 64 * MIB
    assert "ChecksumCRC32" in head  # every part went up with its CRC32 for the server to check
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    fetched = store.get("weights", tmp_path / "out.bin")
    assert sha(fetched.read_bytes()) == artifact.digest == sha(data)


# --- Push and pull --------------------------------------------------------------------------


def test_push_and_pull_move_only_what_the_other_side_lacks(s3, tmp_path):
    local = ArtifactStore.open(str(tmp_path / "local"))
    model = {"weights.bin": os.urandom(12 * MIB), "config.json": b'{"dim": 4}'}
    local.commit("model", write_tree(tmp_path / "model", model), {"phase": "2.1"})
    local.commit("config", write_tree(tmp_path / "c", {"config.json": b'{"dim": 4}'}), {})
    remote = ArtifactStore.open(s3.url("shared"), part_size="5MiB")

    first = transfer(local, remote)
    assert (first.blobs_moved, first.blobs_skipped) == (2, 0)  # config.json is shared
    assert first.bytes_moved > 12 * MIB
    assert (first.manifests_moved, first.refs_moved) == (2, 2)
    assert sorted(remote.names()) == ["config", "model"]

    again = transfer(local, remote)
    assert (again.bytes_moved, again.blobs_moved, again.blobs_skipped) == (0, 0, 2)
    assert (again.manifests_moved, again.refs_moved) == (0, 0)

    local.commit("notes", write_tree(tmp_path / "n", {"n.txt": b"new"}), {})
    third = transfer(local, remote, ["notes"])
    assert (third.blobs_moved, third.blobs_skipped, third.refs_moved) == (1, 0, 1)

    pulled = ArtifactStore.open(str(tmp_path / "pulled"))
    back = transfer(remote, pulled, ["model"])
    assert (back.blobs_moved, back.refs_moved) == (2, 1)
    assert read_tree(pulled.get("model", tmp_path / "out")) == model
    assert pulled.resolve("model").lineage["phase"] == "2.1"
    assert transfer(remote, pulled, ["model"]).bytes_moved == 0
    assert transfer(remote, pulled).blobs_moved == 1  # config's blob is there; notes' is not


def test_a_pulled_blob_that_does_not_match_its_name_is_refused(s3, tmp_path):
    remote = ArtifactStore.open(s3.url("bad"))
    remote.commit("thing", write_tree(tmp_path / "t", {"t.txt": b"true content"}), {})
    s3.client.put_object(
        Bucket=s3.bucket, Key=blob_key("bad", b"true content"), Body=b"evil content"
    )
    local = ArtifactStore.open(str(tmp_path / "local"))

    with pytest.raises(StoreError, match="content does not match"):
        transfer(remote, local)
    assert local.names() == []
    assert [p for p in (tmp_path / "local").rglob("*") if p.is_file()] == []


def test_cli_push_and_pull(s3, tmp_path, capsys):
    local = str(tmp_path / "local")
    source = write_tree(tmp_path / "data", {"a.txt": b"alpha", "b.txt": b"beta"})
    assert cli_main(["--store", local, "artifacts", "add", "data", str(source)]) == 0
    url = s3.url("cli")

    assert cli_main(["--store", local, "artifacts", "push", url]) == 0
    assert cli_main(["--store", local, "artifacts", "push", url, "data"]) == 0
    other = str(tmp_path / "other")
    assert cli_main(["--store", other, "artifacts", "pull", url, "data"]) == 0
    out = capsys.readouterr().out.splitlines()

    assert out[-3].startswith(f"pushed 1 artifact(s) to {url}: 2 blob(s) moved")
    assert out[-2].startswith(f"pushed 1 artifact(s) to {url}: 0 blob(s) moved (0 B), 2 already")
    assert out[-1].startswith(f"pulled 1 artifact(s) from {url}: 2 blob(s) moved")
    assert ArtifactStore.open(other).resolve("data").digest == ArtifactStore.open(url).ref("data")


def test_cli_pull_of_an_unknown_name_copies_nothing(s3, tmp_path, capsys):
    url = s3.url("unknown")
    ArtifactStore.open(url).commit("real", write_tree(tmp_path / "r", {"r": b"r"}), {})
    local = str(tmp_path / "local")

    assert cli_main(["--store", local, "artifacts", "pull", url, "real", "reel"]) == 1
    assert "no artifact 'reel' in the store; did you mean real" in capsys.readouterr().err
    assert ArtifactStore.open(local).names() == []


# --- Failures: retries, a server gone mid-upload ---------------------------------------


class CuttingProxy:
    """A TCP proxy to the moto server that goes away once `cut_after` bytes went upstream.

    Going away means what a stopped server means to its clients: open connections are reset,
    and new ones are refused (nothing listens on the port any more).
    """

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if upstream:
                    with self._lock:
                        self.forwarded += len(data)
                    if self.forwarded >= self.cut_after:
                        self.stop()
                        return
                dest.sendall(data)
        except OSError:
            pass

    def stop(self) -> None:
        """Reset every connection and stop listening."""
        self.cut.set()
        with self._lock:
            sockets, self._sockets = [self._listener, *self._sockets], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def cutting_proxy(s3) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(s3.port, cut_after=12 * MIB)
    yield proxy
    proxy.stop()


def test_a_server_stopped_mid_upload_retries_then_fails_in_one_line(
    s3, cutting_proxy, tmp_path, monkeypatch, capsys
):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * MIB))
    # Through the proxy, with few and short retries so that the test does not wait long.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{cutting_proxy.port}")
    for name, value in {
        "PART_SIZE": "8MiB",
        "MAX_CONCURRENCY": "2",
        "RETRIES": "2",
        "TRANSFER_ATTEMPTS": "2",
        "BACKOFF_S": "0.05",
        "CONNECT_TIMEOUT_S": "2",
    }.items():
        monkeypatch.setenv(f"VOLTX_S3_{name}", value)
    url = s3.url("stopped")

    code = cli_main(["--json-logs", "--store", url, "artifacts", "add", "big", str(big)])

    assert cutting_proxy.cut.is_set()
    assert code == 1
    stderr = capsys.readouterr().err.splitlines()
    errors = [line for line in stderr if "error:" in line and not line.startswith("{")]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"voltx: error: cannot upload blobs/sha256/{sha(big.read_bytes())[:2]}"
    )
    events = [json.loads(line)["event"] for line in stderr if line.startswith("{")]
    assert "s3 transfer failed; retrying" in events
    # Nothing of it is visible: no manifest, no ref, no completed blob.
    assert ArtifactStore.open(url, endpoint_url=s3.endpoint).names() == []
    assert s3.keys("stopped/") == []


def test_retries_back_off_with_jitter_and_stop_at_answers():
    calls = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionResetError("dropped")
        return "ok"

    policy = Backoff(attempts=3, base_s=0.01, cap_s=0.05)
    assert asyncio.run(retry_async(flaky, policy, "a part")) == "ok"
    assert len(calls) == 3
    assert all(0.0 <= policy.delay(n) <= 0.05 for n in range(1, 10))

    async def absent() -> None:
        calls.append(time.monotonic())
        raise FileNotFoundError("no such key")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        asyncio.run(retry_async(absent, policy, "a read"))
    assert len(calls) == 1  # an answer is not retried
    assert is_transient(OSError(16, "conflict"))  # EBUSY: s3fs's 409 and 503
    assert not is_transient(PermissionError("denied"))


# --- Secrets, and a real run with workers on the S3 store ----------------------------


def _command_lines(stop: threading.Event, seen: set[str]) -> None:
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
                except OSError:
                    continue
        time.sleep(0.02)


@pytest.mark.slow
def test_a_run_on_an_s3_store_keeps_the_secret_everywhere_it_should(
    s3, example_site, tmp_path, monkeypatch
):
    secret = f"planted-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    project = tmp_path / "project"
    project.mkdir()
    home = Path(os.environ["VOLTX_HOME"])
    url = s3.url("e2e")
    env = subprocess_env(example_site)
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_command_lines, args=(stop, seen), daemon=True)
    watcher.start()
    pulled = str(tmp_path / "pulled")
    try:
        outputs = []
        for args in (
            ["--debug", "--store", url, "run", "ex.report"],
            ["--store", pulled, "artifacts", "pull", url],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "voltx", *args],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout + done.stderr)
    finally:
        stop.set()
        watcher.join()

    # The run worked, on S3, with workers that read and wrote the store themselves.
    statuses = {
        parts[0]: parts[1]
        for parts in (line.split() for line in outputs[0].splitlines())
        if len(parts) > 1 and parts[0].startswith("ex.")
    }
    assert statuses == dict.fromkeys(
        ["ex.corpus", "ex.lines", "ex.tokens", "ex.report"], "succeeded"
    )
    keys = s3.keys("e2e/")
    assert any(k.startswith("e2e/refs/ex_report") for k in keys)
    assert any(k.startswith("e2e/records/runs/") for k in keys)
    jobs = [json.loads(p.read_text()) for p in tmp_path.rglob("job.json")]
    jobs += [json.loads(p.read_text()) for p in home.rglob("job.json")]
    assert len(jobs) == 4 and {job["store"] for job in jobs} == {url}
    report = ArtifactStore.open(url).resolve("ex_report")
    assert report.lineage["phase"] == "ex.report"
    assert ArtifactStore.open(pulled).resolve("ex_report").digest == report.digest

    # The secret is nowhere: output, objects (manifests, lineage, ledger), job folders, argv.
    assert secret.encode() not in b"".join(s3.read(key) for key in keys)
    assert all(secret not in text for text in outputs)
    for folder in (tmp_path, home):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert any("-m voltx worker" in line for line in seen)  # the workers were seen
    assert not [line for line in seen if secret in line]
