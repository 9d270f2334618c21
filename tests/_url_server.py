"""A loopback HTTP server for URL-input tests, that says which process read what (`_url_server`).

It serves in-memory files with ``ETag``, ``Content-Length`` and ``Range`` support (what fsspec's
HTTP filesystem uses: a HEAD for `info`, ranged GETs for reads), answers 404 for unknown paths and
401 under ``/private/`` without the right bearer token. Every request is logged with the bytes of
body sent and the id of the process on the other end of the connection: the server looks the
client's socket up in ``/proc/net/tcp`` and finds the process holding it in ``/proc/*/fd``. That
is how a test measures "0 bytes through the orchestrator": the orchestrator is the test's own
process, so no body byte may be logged against ``os.getpid()``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest


@attrs.frozen
class Access:
    method: str
    path: str
    status: int
    body_bytes: int
    pid: int | None


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str = "good-token") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.token = token
        self.log: list[Access] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def bytes_to(self, pid: int) -> int:
        """Body bytes sent to connections held by process `pid`."""
        with self.lock:
            return sum(a.body_bytes for a in self.log if a.pid == pid)

    def bytes_not_to(self, pid: int) -> int:
        with self.lock:
            return sum(a.body_bytes for a in self.log if a.pid != pid)

    def gets(self) -> list[Access]:
        with self.lock:
            return [a for a in self.log if a.method == "GET"]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()


class _Handler(BaseHTTPRequestHandler):
    server: CountingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        data = self.server.files.get(path.lstrip("/"))
        if path.startswith("/private/") and (
            self.headers.get("Authorization") != f"Bearer {self.server.token}"
        ):
            self._empty(401)
            return
        if data is None:
            self._empty(404)
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        start, end, status = 0, len(data), 200
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start = int(first) if first else 0
            end = min(len(data), int(last) + 1) if last else len(data)
            status = 206
        chunk = data[start:end]
        # Logged before answering: a client that has its answer finds its request in the log.
        self._record(status, len(chunk) if body else 0)
        self.send_response(status)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if body:
            self.wfile.write(chunk)

    def _empty(self, status: int) -> None:
        self._record(status, 0)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self, status: int, sent: int) -> None:
        pid = peer_pid(self.client_address[1], self.server.port)
        with self.server.lock:
            self.server.log.append(Access(self.command, self.path, status, sent, pid))


def peer_pid(client_port: int, server_port: int) -> int | None:
    """The process holding the client end (local port `client_port`) of a loopback connection."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    for fd_dir in _fd_dirs():
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) == link:
                    return int(fd_dir.parent.name)
        except OSError:
            continue  # the process ended, or is not ours to look into
    return None


def _socket_inode(client_port: int, server_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == client_port and remote_port == server_port:
                return fields[9]
    return None


def _fd_dirs() -> Iterator[Path]:
    uid = os.getuid()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.stat().st_uid == uid:
                    yield proc / "fd"
            except OSError:
                continue


def serve() -> tuple[CountingServer, threading.Thread]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def url_server() -> Iterator[CountingServer]:
    """A `CountingServer` on 127.0.0.1 for the test module, shut down after it."""
    served, thread = serve()
    try:
        yield served
    finally:
        served.shutdown()
        thread.join()


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    """`rows` as JSONL bytes, one object per line."""
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar archive (gzipped by default) holding `members`, name to bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
