"""Faults and the run lease on s3:// against a real S3-compatible server (moto) on 127.0.0.1.

The server stopped in the middle of a push and started again: the push either completes on retry
or leaves nothing visible, and a second push finishes it. The run lease is create-only on S3 too
(a conditional PUT), so of two runs exactly one holds it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from voltx.cli import main as cli_main
from voltx.errors import RunLeaseError
from voltx.run_lease import LEASE_RECORD, RunLease
from voltx.store import ArtifactStore

pytestmark = pytest.mark.integration

MIB = 2**20


class RestartingProxy:
    """A TCP proxy to the moto server that, once `cut_after` bytes went upstream, stops as a
    server stops (every connection reset, nothing listening) and starts again `down_s` later
    on the same port."""

    def __init__(self, upstream_port: int, cut_after: int, down_s: float) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.down_s = down_s
        self.forwarded = 0
        self.cut = threading.Event()
        self.restarted = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
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
                if upstream and not self.cut.is_set():
                    with self._lock:
                        self.forwarded += len(data)
                    if self.forwarded >= self.cut_after:
                        self._go_down()
                        return
                dest.sendall(data)
        except OSError:
            pass

    def _go_down(self) -> None:
        self.cut.set()
        self._reset_all()
        threading.Thread(target=self._come_back, daemon=True).start()

    def _come_back(self) -> None:
        time.sleep(self.down_s)
        with self._lock:
            if self._closed:
                return
            self._listener = socket.create_server(("127.0.0.1", self.port))
            listener = self._listener
        self.restarted.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _reset_all(self) -> None:
        with self._lock:
            sockets, self._sockets = [self._listener, *self._sockets], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._reset_all()


@pytest.mark.parametrize(
    ("attempts", "down_s", "first_code"),
    [("1", 4.0, 1), ("6", 0.5, 0)],
    # Down longer than the retries wait: the push fails, and pushing again finishes it. Down
    # shorter: the retries carry the push through the restart.
    ids=["fails-then-pushed-again", "retries-through-the-restart"],
)
def test_a_push_through_a_server_restart_completes_or_leaves_nothing_visible(
    s3, tmp_path, monkeypatch, attempts, down_s, first_code
):
    restarting_proxy = RestartingProxy(s3.port, cut_after=6 * MIB, down_s=down_s)
    try:
        _push_through(s3, restarting_proxy, tmp_path, monkeypatch, attempts, first_code)
    finally:
        restarting_proxy.close()


def _push_through(s3, restarting_proxy, tmp_path, monkeypatch, attempts, first_code):
    local_url = str(tmp_path / "local")
    local = ArtifactStore.open(local_url)
    data = tmp_path / "data"
    data.mkdir()
    for index in range(3):
        (data / f"part-{index}.bin").write_bytes(os.urandom(4 * MIB))
    added = local.add("data", data)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{restarting_proxy.port}")
    for name, value in {
        "PART_SIZE": "5MiB",
        "MAX_CONCURRENCY": "1",
        "RETRIES": "1",
        "TRANSFER_ATTEMPTS": attempts,
        "BACKOFF_S": "0.6",
        "CONNECT_TIMEOUT_S": "2",
    }.items():
        monkeypatch.setenv(f"VOLTX_S3_{name}", value)
    url = s3.url("pushed")

    code = cli_main(["--store", local_url, "artifacts", "push", url])

    assert restarting_proxy.cut.is_set()
    assert code == first_code
    remote = ArtifactStore.open(url, endpoint_url=s3.endpoint)
    if code == 0:
        assert remote.verify("data").digest == added.digest
    else:
        # Nothing half-pushed is visible: no ref, no manifest.
        assert remote.names() == []
        assert [k for k in s3.keys("pushed/") if "/manifests/" in k or "/refs/" in k] == []
        assert restarting_proxy.restarted.wait(10)
        assert cli_main(["--store", local_url, "artifacts", "push", url]) == 0
    assert remote.verify("data").digest == added.digest
    out = remote.get("data", tmp_path / "back")
    assert {p.name: p.read_bytes() for p in Path(out).iterdir()} == {
        p.name: p.read_bytes() for p in data.iterdir()
    }


# --- The run lease on S3 -------------------------------------------------------------------


def test_the_run_lease_is_create_only_on_s3(s3):
    store = ArtifactStore.open(s3.url("leased"))
    first = RunLease(store, "run-one", heartbeat_every_s=0.05)
    first.acquire()
    try:
        with pytest.raises(RunLeaseError, match=r"run run-one \(pid \d+ on .*, since "):
            RunLease(store, "run-two").acquire()
        time.sleep(0.2)  # a few heartbeats: the lease is still the first run's
        holder = first.holder()
        assert holder is not None and holder.run_id == "run-one"
    finally:
        first.release()
    assert store.read_record(LEASE_RECORD) is None
    with RunLease(store, "run-three"):
        assert s3.keys("leased/records/runs/") == ["leased/records/runs/lease.json"]


def test_a_lease_from_another_host_with_an_old_heartbeat_is_taken_over_on_s3(s3):
    store = ArtifactStore.open(s3.url("stale"))
    old = {
        "lease_id": "a" * 32,
        "run_id": "elsewhere-run",
        "host": "another-host.invalid",
        "pid": 4242,
        "since": "2026-01-01T00:00:00Z",
        "heartbeat_ns": time.time_ns() - int(600e9),
    }
    store.write_record(LEASE_RECORD, old, create=True)
    with RunLease(store, "taker", stale_after_s=120) as lease:
        holder = lease.holder()
        assert holder is not None and holder.run_id == "taker"
    # A fresh heartbeat from another host is respected.
    store.write_record(LEASE_RECORD, {**old, "heartbeat_ns": time.time_ns()}, create=True)
    with pytest.raises(RunLeaseError, match="elsewhere-run"):
        RunLease(store, "too-early", stale_after_s=120).acquire()
