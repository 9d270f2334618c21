"""A fake Vast.ai API on 127.0.0.1 whose instances are real sshd servers (import, not conftest).

    from fake_vast import FakeVast, fake_vast  # noqa: F401 (a fixture, used by name)

It implements the endpoints and fields of ``docs/vast.md`` that voltx uses, with
the quirks a real client meets:

- auth by ``Authorization: Bearer`` (or the old ``api_key`` query argument, which it counts, so a
  test can assert voltx never sends it); 401 with a JSON body otherwise;
- offer search (``POST /api/v0/bundles/`` and ``PUT /api/v0/search/asks/``) with ``{op: value}``
  filters whose numbers may arrive as strings (coerced to the field's type, as the server does),
  ``order``, ``limit``; ``rented`` is true while an instance lives on the offer;
- rent (``PUT /api/v0/asks/{id}/``): the full body checked, 404 ``no_such_ask`` for an unknown,
  rented or vanished offer; the instance goes ``null`` -> ``loading`` -> ``running``;
- ``GET /api/v1/instances/`` with ``limit`` (at most 25), ``after_token`` cursor pages,
  ``select_filters`` on stored columns only (a computed one is a 400);
- ``GET /api/v0/instances/{id}/`` answering ``{"instances": <object or null>}``;
  ``DELETE`` the same path (404 once gone); ``POST .../ssh/`` to attach a key;
- string ``HostPort`` in ``ports`` (null until running), ``extra_env`` as a list of pairs.

Each instance that reaches ``running`` runs its ``onstart`` with ``HOME`` set to a folder of its
own (so the run's key really is installed by voltx's onstart script) and gets an sshd of its own
on a free port, with ``SetEnv VAST_CONTAINERLABEL=C.<id>`` as a real container has: every process
of the "container" carries the label, and destroying or preempting the instance kills them all.

Each instance presents its offer's GPUs: a fake ``nvidia-smi``, first on the ``PATH`` of its SSH
sessions, lists ``num_gpus`` GPUs of ``gpu_ram`` MiB and a header with ``CUDA Version:
<cuda_max_good>``; `lie_about_gpus` makes a machine advertise more than it has.

Faults, for the chaos tests: `rate_limit_burst` (429 with a text or JSON body, no Retry-After),
`server_errors` (5xx), `vanish_offers` (listed, then 404 on rent), `exit_while_loading` (a
machine whose containers die while loading), `preempt` (the instance goes ``exited`` or
``stopped`` while ``intended_status`` stays ``running``, and its sshd and processes die).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from ssh_fixtures import SSHD, SSHServer, _free_port, _keygen

from _support import TEST_PLUGINS, subprocess_env

API_KEY = "planted-vast-key-7Qx93LmZ"
RUNTYPE_TOKENS = frozenset(
    {"ssh", "ssh_direc", "ssh_direct", "ssh_proxy", "jupyter", "jupyter_direc", "jupyter_direct"}
    | {"jupyter_proxy", "args"}
)
CREATE_FIELDS = frozenset(
    {
        "client_id",
        "image",
        "env",
        "price",
        "disk",
        "label",
        "extra",
        "onstart",
        "image_login",
        "python_utf8",
        "lang_utf8",
        "use_jupyter_lab",
        "jupyter_dir",
        "force",
        "cancel_unavail",
        "template_hash_id",
        "user",
        "runtype",
        "args",
        "args_str",
        "volume_info",
        "target_state",
    }
)
# Columns the v1 list may filter on (stored ones); computed ones such as dph_total are a 400.
STORED_COLUMNS = frozenset(
    {"id", "label", "actual_status", "intended_status", "cur_state", "machine_id", "host_id"}
)
_SEARCH_CONTROL = frozenset({"order", "type", "limit", "allocated_storage"})

_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {home}/.ssh/authorized_keys
PidFile {folder}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
SetEnv VAST_CONTAINERLABEL=C.{id} FAKE_VAST_SERVER={token} HOME={home} "PATH={path}"
"""

_NVIDIA_SMI = """\
#!/bin/sh
# A fake nvidia-smi: the GPUs the fake Vast machine really has.
case " $* " in
    *" --query-gpu=memory.total"*)
        i=0
        while [ "$i" -lt {num_gpus} ]; do echo {gpu_ram}; i=$((i + 1)); done ;;
    *)
        echo "+-----------------------------------------------------------------------------+"
        echo "| NVIDIA-SMI 550.54.14   Driver Version: 550.54.14   CUDA Version: {cuda}     |"
        echo "+-----------------------------------------------------------------------------+" ;;
esac
"""


def default_offers() -> list[dict[str, Any]]:
    """Four machines, cheapest first by price: two RTX 4090, an A100, and a cheap old card."""
    base = {
        "cuda_max_good": 12.4,
        "cpu_cores_effective": 16.0,
        "cpu_ram": 64000,
        "disk_space": 200.0,
        "inet_up": 500.0,
        "inet_down": 800.0,
        "reliability": 0.99,
        "reliability2": 0.99,
        "verified": True,
        "rentable": True,
        "external": False,
        "geolocation": "US",
        "direct_port_count": 20,
        "min_bid": 0.1,
        "score": 100.0,
    }
    machines = [
        (101, "RTX 4090", 1, 24564, 0.40),
        (102, "RTX 4090", 1, 24564, 0.45),
        (103, "A100 SXM4", 1, 81920, 1.20),
        (104, "GTX 1080", 1, 8192, 0.08),
    ]
    offers = []
    for number, (machine, gpu, count, ram, price) in enumerate(machines):
        offers.append(
            {
                **base,
                "id": 5000 + number,
                "ask_contract_id": 5000 + number,
                "bundle_id": 9000 + number,
                "machine_id": machine,
                "host_id": 70 + number,
                "gpu_name": gpu,
                "num_gpus": count,
                "gpu_ram": ram,
                "gpu_total_ram": ram * count,
                "dph_base": price * 0.9,
                "dph_total": price,
            }
        )
    # The 1080 is unreliable and unverified: default filters leave it out.
    offers[3].update(reliability=0.8, reliability2=0.8, verified=False)
    return offers


@attrs.define(eq=False)
class FakeInstance:
    """One rented "container": its API state and, once running, its sshd."""

    id: int
    offer: dict[str, Any]
    body: dict[str, Any]
    created: float
    folder: Path
    actual_status: str | None = None
    intended_status: str = "running"
    status_msg: str = ""
    forced: bool = False
    destroyed: bool = False
    server: SSHServer | None = None
    attached_keys: list[str] = attrs.field(factory=list)
    start_date: float = attrs.field(factory=time.time)
    # When it was destroyed (time.monotonic, like `created`): what it was billed for ends then.
    destroyed_at: float | None = None

    @property
    def label(self) -> str:
        return str(self.body.get("label") or "")

    @property
    def machine_id(self) -> int:
        return int(self.offer["machine_id"])

    @property
    def home(self) -> Path:
        return self.folder / "home"


@attrs.define
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0


class FakeVast:
    """The fake API and its instances (see the module docstring)."""

    def __init__(self, root: Path, api_key: str = API_KEY, *, loading_s: float = 0.3) -> None:
        self.root = root
        self.api_key = api_key
        self.loading_s = loading_s
        self.offers: dict[int, dict[str, Any]] = {o["id"]: o for o in default_offers()}
        self.instances: dict[int, FakeInstance] = {}
        self.requests: list[Recorded] = []
        self.key_in_query = 0
        self.direct_ssh = True
        # The published direct port leads nowhere (a firewalled machine): only the proxy works.
        self.broken_direct = False
        self.max_live = 0
        self.ssh_attach_enabled = True
        self._lock = threading.RLock()
        self._next_id = 31000
        self._bursts: list[list[Any]] = []  # [remaining, status, path, method, json_body]
        self._vanishing: set[int] = set()
        self._exit_machines: set[int] = set()
        self._gpu_lies: dict[int, dict[str, Any]] = {}
        self._host_key = root / "host_key"
        self._closed_port = _free_port()
        # Instance ids repeat between fakes (and test processes run side by side): only the
        # processes of this fake's container carry this token too.
        self.token = uuid.uuid4().hex
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # One host key for every instance (a key per instance would cost an ssh-keygen each);
        # voltx pins it per instance anyway.
        _keygen(self._host_key)
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        with self._lock:
            for instance in self.instances.values():
                self._kill(instance)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- faults ----------------------------------------------------------------------------

    def rate_limit_burst(
        self, count: int, path: str = "", method: str | None = None, json_body: bool = False
    ) -> None:
        """The next `count` requests to paths starting with `path` get 429."""
        with self._lock:
            self._bursts.append([count, 429, path, method, json_body])

    def server_errors(
        self, count: int, status: int = 502, path: str = "", method: str | None = None
    ) -> None:
        """The next `count` matching requests get `status` (a plain-text gateway error)."""
        with self._lock:
            self._bursts.append([count, status, path, method, False])

    def vanish_offers(self, *offer_ids: int) -> None:
        """These offers still show in searches but are gone when rented (404 no_such_ask)."""
        with self._lock:
            self._vanishing.update(offer_ids)

    def exit_while_loading(self, *machine_ids: int) -> None:
        """Containers on these machines die (``exited``) instead of reaching ``running``."""
        with self._lock:
            self._exit_machines.update(machine_ids)

    def lie_about_gpus(
        self,
        machine_id: int,
        *,
        gpu_ram_mib: int | None = None,
        num_gpus: int | None = None,
        cuda: float | None = None,
    ) -> None:
        """The machine's offers keep advertising their GPUs, but its containers (booted from
        now on) see these instead: less memory, fewer GPUs, an older CUDA driver."""
        truth = {"gpu_ram": gpu_ram_mib, "num_gpus": num_gpus, "cuda_max_good": cuda}
        with self._lock:
            lies = self._gpu_lies.setdefault(machine_id, {})
            lies.update({key: value for key, value in truth.items() if value is not None})

    def preempt(self, instance_id: int, state: str = "exited") -> None:
        """The instance stops under its user: its state flips, its sshd and processes die."""
        with self._lock:
            instance = self.instances[instance_id]
            instance.actual_status = state
            instance.status_msg = "host preempted the container"
            instance.forced = True
            self._kill(instance)

    # -- what happened ---------------------------------------------------------------------

    def live(self) -> list[FakeInstance]:
        """Instances not destroyed (whatever their state)."""
        with self._lock:
            return [i for i in self.instances.values() if not i.destroyed]

    def created(self) -> list[FakeInstance]:
        """Every instance ever rented, in order."""
        with self._lock:
            return sorted(self.instances.values(), key=lambda i: i.id)

    def wait_for(self, condition: Any, what: str, timeout_s: float = 30.0) -> Any:
        """Poll `condition()` until it returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Vast: waited {timeout_s:g} s for {what}")
            time.sleep(0.05)

    def add_instance(self, label: str, offer_id: int = 5001, status: str = "running") -> int:
        """An instance made behind voltx's back (another tool, a dead run)."""
        with self._lock:
            instance = self._create(self.offers[offer_id], {"label": label, "image": "x"})
            instance.actual_status = status
            instance.forced = True
            return instance.id

    # -- the HTTP side ---------------------------------------------------------------------

    def handle(self, request: _Handler) -> None:
        split = urlsplit(request.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(request.command, split.path, query, body)
        with self._lock:
            self.requests.append(record)
        status, payload, text = self._answer(request, split.path, query, body)
        record.status = status
        data = text.encode() if text is not None else json.dumps(payload).encode()
        request.send_response(status)
        request.send_header(
            "Content-Type", "text/plain" if text is not None else "application/json"
        )
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(
        self, request: _Handler, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, str | None]:
        method = request.command
        auth = request.headers.get("Authorization", "")
        if "api_key" in query:
            self.key_in_query += 1
        if auth != f"Bearer {self.api_key}" and query.get("api_key") != [self.api_key]:
            return 401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}, None
        fault = self._fault(method, path)
        if fault is not None:
            return fault
        if method != "GET" and body is None:
            return 400, {"success": False, "error": "invalid_args", "msg": "body required"}, None
        args = {name: _decode_arg(values[-1]) for name, values in query.items()}
        with self._lock:
            if method == "POST" and path == "/api/v0/bundles/":
                return self._search(body)
            if method == "PUT" and path == "/api/v0/search/asks/":
                return self._search(body.get("q", {}) if isinstance(body, dict) else {})
            if method == "GET" and path == "/api/v1/instances/":
                return self._list(args)
            if method == "GET" and path == "/api/v0/users/current/":
                return 200, {"id": 1, "email": "test@example.org", "credit": 25.0}, None
            match = re.fullmatch(r"/api/v0/asks/(\d+)/", path)
            if match and method == "PUT":
                return self._rent(int(match[1]), body)
            match = re.fullmatch(r"/api/v0/instances/(\d+)/(ssh/)?", path)
            if match:
                instance = self.instances.get(int(match[1]))
                if instance is not None and instance.destroyed:
                    instance = None
                if match[2] and method == "POST":
                    return self._attach_key(instance, body)
                if method == "GET":
                    if instance is not None:
                        self._advance(instance)
                    return 200, {"instances": self._view(instance) if instance else None}, None
                if method == "DELETE":
                    return self._destroy(instance, int(match[1]))
                if method == "PUT":
                    return self._change(instance, body)
        return 404, {"success": False, "error": "not_found", "msg": f"no route {path}"}, None

    def _fault(self, method: str, path: str) -> tuple[int, Any, str | None] | None:
        with self._lock:
            for burst in self._bursts:
                remaining, status, prefix, only, as_json = burst
                if remaining <= 0 or not path.startswith(prefix) or only not in (None, method):
                    continue
                burst[0] -= 1
                if status != 429:
                    return status, None, f"{status} Bad Gateway"
                if as_json:
                    return (
                        429,
                        {
                            "success": False,
                            "error": "rate_limit_exceeded",
                            "msg": "API requests too frequent endpoint threshold=3.0",
                        },
                        None,
                    )
                return 429, None, "API requests too frequent: endpoint threshold=3.0"
        return None

    # -- offers ----------------------------------------------------------------------------

    def _search(self, filters: Any) -> tuple[int, Any, str | None]:
        if not isinstance(filters, dict):
            return 400, {"success": False, "error": "invalid_args", "msg": "bad query"}, None
        rented = {i.offer["id"] for i in self.instances.values() if not i.destroyed}
        found = []
        for offer in self.offers.values():
            row = {**offer, "rented": offer["id"] in rented}
            if all(
                _matches(row.get(field), condition)
                for field, condition in filters.items()
                if field not in _SEARCH_CONTROL and isinstance(condition, dict)
            ):
                found.append(row)
        order = filters.get("order") or [["score", "desc"]]
        for column, direction in reversed(order):
            found.sort(key=lambda o, c=column: o.get(c) or 0, reverse=direction == "desc")
        limit = int(filters.get("limit") or 64)
        return 200, {"offers": found[:limit]}, None

    def _rent(self, offer_id: int, body: Any) -> tuple[int, Any, str | None]:
        not_available = {
            "success": False,
            "error": "no_such_ask",
            "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.",
            "ask_id": offer_id,
        }
        offer = self.offers.get(offer_id)
        busy = any(i.offer["id"] == offer_id for i in self.instances.values() if not i.destroyed)
        if offer is None or busy:
            return 404, not_available, None
        if offer_id in self._vanishing:
            del self.offers[offer_id]
            return 404, not_available, None
        problems = _check_create_body(body)
        if problems:
            return 400, {"success": False, "error": "invalid_args", "msg": problems}, None
        instance = self._create(offer, body)
        return (
            200,
            {"success": True, "new_contract": instance.id, "instance_api_key": "fake-inst-key"},
            None,
        )

    def _create(self, offer: dict[str, Any], body: dict[str, Any]) -> FakeInstance:
        self._next_id += 1
        instance = FakeInstance(
            id=self._next_id,
            offer=offer,
            body=body,
            created=time.monotonic(),
            folder=self.root / f"instance-{self._next_id}",
        )
        self.instances[instance.id] = instance
        self.max_live = max(
            self.max_live, len([i for i in self.instances.values() if not i.destroyed])
        )
        return instance

    # -- instances -------------------------------------------------------------------------

    def _advance(self, instance: FakeInstance) -> None:
        """Move an instance along null -> loading -> running (or exited), by its age."""
        if instance.destroyed or instance.forced:
            return
        age = time.monotonic() - instance.created
        if instance.actual_status is None and age >= min(self.loading_s / 3, 0.1):
            instance.actual_status = "loading"
            instance.status_msg = "Pulling image"
        if instance.actual_status == "loading" and age >= self.loading_s:
            if instance.machine_id in self._exit_machines:
                instance.actual_status = "exited"
                instance.status_msg = "Error: container exited with code 1 while loading"
                return
            self._boot(instance)
            instance.actual_status = "running"
            instance.status_msg = "success, running"

    def _boot(self, instance: FakeInstance) -> None:
        """Run onstart with the container's HOME, then start its sshd."""
        instance.home.mkdir(parents=True, exist_ok=True)
        onstart = str(instance.body.get("onstart") or "")
        if onstart:
            env = {"HOME": str(instance.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            subprocess.run(
                ["sh", "-c", onstart],
                cwd=instance.home,
                env=env,
                capture_output=True,
                timeout=30,
                check=False,
            )
        ssh = instance.home / ".ssh"
        ssh.mkdir(exist_ok=True)
        keys = ssh / "authorized_keys"
        with open(keys, "a") as handle:
            for key in instance.attached_keys:
                handle.write(key + "\n")
        path = f"{self._install_nvidia_smi(instance)}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        server = SSHServer(folder=instance.folder, port=_free_port())
        (instance.folder / "sshd_config").write_text(
            _SSHD_CONFIG.format(
                port=server.port,
                host_key=self._host_key,
                home=instance.home,
                folder=instance.folder,
                id=instance.id,
                token=self.token,
                path=path,
            )
        )
        server.start()
        instance.server = server

    def _install_nvidia_smi(self, instance: FakeInstance) -> Path:
        """The instance's bin folder, holding an ``nvidia-smi`` that shows its machine's GPUs."""
        gpus = {**instance.offer, **self._gpu_lies.get(instance.machine_id, {})}
        folder = instance.folder / "bin"
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "nvidia-smi"
        script.write_text(
            _NVIDIA_SMI.format(
                num_gpus=int(gpus["num_gpus"]),
                gpu_ram=int(gpus["gpu_ram"]),
                cuda=f"{float(gpus['cuda_max_good']):g}",
            )
        )
        script.chmod(0o755)
        return folder

    def _kill(self, instance: FakeInstance) -> None:
        """The container dies: its sshd, and every process that carries its label."""
        if instance.server is not None:
            instance.server.stop()
            instance.server = None
        marker = f"VAST_CONTAINERLABEL=C.{instance.id}".encode()
        token = f"FAKE_VAST_SERVER={self.token}".encode()
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ and token in environ:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _destroy(
        self, instance: FakeInstance | None, instance_id: int
    ) -> tuple[int, Any, str | None]:
        if instance is None:
            return (
                404,
                {
                    "success": False,
                    "error": "no_such_instance",
                    "msg": f"no instance {instance_id}",
                },
                None,
            )
        instance.destroyed = True
        instance.destroyed_at = time.monotonic()
        instance.actual_status = "destroyed"
        self._kill(instance)
        shutil.rmtree(instance.folder, ignore_errors=True)
        return 200, {"success": True, "msg": "Instance destroyed successfully"}, None

    def _change(self, instance: FakeInstance | None, body: Any) -> tuple[int, Any, str | None]:
        if instance is None:
            return 404, {"success": False, "error": "no_such_instance", "msg": "gone"}, None
        if isinstance(body, dict) and "label" in body:
            instance.body["label"] = str(body["label"])
        if isinstance(body, dict) and body.get("state") == "stopped":
            instance.actual_status = instance.intended_status = "stopped"
            instance.forced = True
            self._kill(instance)
        return 200, {"success": True}, None

    def _attach_key(self, instance: FakeInstance | None, body: Any) -> tuple[int, Any, str | None]:
        if instance is None:
            return 404, {"success": False, "error": "no_such_instance", "msg": "gone"}, None
        if not self.ssh_attach_enabled:
            return 400, {"success": False, "error": "not_supported", "msg": "not here"}, None
        key = str(body.get("ssh_key", "")).strip() if isinstance(body, dict) else ""
        if not key.startswith("ssh-"):
            return 400, {"success": False, "error": "invalid_args", "msg": "bad key"}, None
        instance.attached_keys.append(key)
        if instance.server is not None:
            with open(instance.home / ".ssh" / "authorized_keys", "a") as handle:
                handle.write(key + "\n")
        return 200, {"success": True, "msg": "SSH key attached successfully"}, None

    def _list(self, args: dict[str, Any]) -> tuple[int, Any, str | None]:
        limit = int(args.get("limit") or 0)
        limit = 5 if limit <= 0 else min(limit, 25)
        filters = args.get("select_filters") or {}
        if not isinstance(filters, dict) or not set(filters) <= STORED_COLUMNS:
            return (
                400,
                {"success": False, "error": "invalid_args", "msg": "filter on a computed column"},
                None,
            )
        after = 0
        token = args.get("after_token")
        if token is not None:
            match = re.fullmatch(r"after:(\d+)", str(token))
            if match is None:
                return 400, {"success": False, "error": "invalid_args", "msg": "bad token"}, None
            after = int(match[1])
        rows = []
        for instance in sorted(self.instances.values(), key=lambda i: i.id):
            if instance.destroyed:
                continue
            self._advance(instance)
            view = self._view(instance)
            if all(_matches(view.get(f), c) for f, c in filters.items()):
                rows.append(view)
        page = [row for row in rows if row["id"] > after][:limit]
        more = page and any(row["id"] > page[-1]["id"] for row in rows)
        labels: dict[str, int] = {}
        for row in rows:
            labels[row["label"] or ""] = labels.get(row["label"] or "", 0) + 1
        return (
            200,
            {
                "success": True,
                "instances_found": len(page),
                "total_instances": len(rows),
                "label_counts": labels,
                "next_token": f"after:{page[-1]['id']}" if more else None,
                "instances": page,
            },
            None,
        )

    def _view(self, instance: FakeInstance) -> dict[str, Any]:
        """The instance object as the API returns it."""
        offer = instance.offer
        running = instance.actual_status == "running" and instance.server is not None
        port = instance.server.port if running and instance.server else None
        direct = self._closed_port if self.broken_direct else port
        env = instance.body.get("env") or {}
        return {
            "id": instance.id,
            "machine_id": offer["machine_id"],
            "host_id": offer["host_id"],
            "actual_status": instance.actual_status,
            "intended_status": instance.intended_status,
            "cur_state": "running" if not instance.destroyed else "unloaded",
            "next_state": "running",
            "label": instance.label or None,
            "status_msg": instance.status_msg,
            "ssh_host": "127.0.0.1" if port else None,
            "ssh_port": port,
            "ssh_idx": "1",
            "public_ipaddr": "127.0.0.1" if port else None,
            "local_ipaddrs": "127.0.0.1 \n",
            "ports": (
                {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(direct)}]}
                if port and self.direct_ssh
                else None
            ),
            "direct_port_start": port,
            "direct_port_end": port,
            "dph_total": offer["dph_total"],
            "dph_base": offer["dph_base"],
            "is_bid": instance.body.get("price") is not None,
            "min_bid": offer["min_bid"],
            "gpu_name": offer["gpu_name"],
            "num_gpus": offer["num_gpus"],
            "gpu_util": 0.0,
            "disk_space": instance.body.get("disk"),
            "geolocation": offer["geolocation"],
            "reliability2": offer["reliability2"],
            "image_uuid": instance.body.get("image"),
            "image_runtype": "ssh ssh_direc ssh_proxy",
            "onstart": instance.body.get("onstart"),
            "extra_env": [[k, v] for k, v in env.items()] if isinstance(env, dict) else [],
            "start_date": instance.start_date,
            "end_date": None,
        }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeVast

    def do_GET(self) -> None:
        self.owner.handle(self)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _decode_arg(text: str) -> Any:
    """A query argument as the official client encodes it: JSON, or a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _coerce(value: Any, like: Any) -> Any:
    """`value` (perhaps a string, as the official client sends numbers) as the type of `like`."""
    if isinstance(like, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    if isinstance(like, int | float):
        return float(value)
    return value if isinstance(value, str) else str(value)


_OPERATORS: dict[str, Any] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _matches(actual: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return False
    for op, wanted in condition.items():
        if op in ("in", "notin"):
            values = [_coerce(v, actual) for v in wanted] if actual is not None else wanted
            inside = actual is not None and _coerce(actual, actual) in values
            if inside != (op == "in"):
                return False
            continue
        if actual is None:
            if op == "neq":
                continue
            return False
        target = _coerce(wanted, actual)
        value = (
            float(actual)
            if isinstance(actual, int | float) and not isinstance(actual, bool)
            else actual
        )
        compare = _OPERATORS.get(op)
        if compare is None or not compare(value, target):
            return False
    return True


def _check_create_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    unknown = set(body) - CREATE_FIELDS
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    if not body.get("image") and not body.get("template_hash_id"):
        return "image is required"
    tokens = str(body.get("runtype") or "").split()
    if not tokens or not set(tokens) <= RUNTYPE_TOKENS:
        return f"bad runtype {body.get('runtype')!r}"
    if not isinstance(body.get("env") or {}, dict):
        return "env must be an object"
    return ""


@pytest.fixture
def fake_vast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVast]:
    """A fresh fake Vast API; the environment points voltx at it with its API key."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} is missing: install openssh-server to run the Vast backend tests")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    fake = FakeVast(tmp_path / "fake-vast")
    fake.start()
    monkeypatch.setenv("VAST_URL", fake.url)
    monkeypatch.setenv("VAST_API_KEY", fake.api_key)
    try:
        yield fake
    finally:
        fake.stop()


def ssh_user() -> str:
    """Who logs in to the fake's instances: the sshd runs as us, so only we can."""
    return getpass.getuser()


def quick_settings(remote_root: Path, **overrides: Any) -> dict[str, Any]:
    """Vast backend settings for the fake: short polls and retries, no bootstrap, this python."""
    settings: dict[str, Any] = {
        "poll_s": 0.05,
        "status_interval_s": 0.05,
        "request_spacing_s": 0.0,
        "retry_backoff_s": 0.01,
        "provision_timeout_s": 20.0,
        "ssh_timeout_s": 20.0,
        "connect_timeout_s": 5,
        "ssh_user": ssh_user(),
        "bootstrap": False,
        "python": sys.executable,
        "remote_root": str(remote_root),
        "image": "voltx/test-image",
    }
    settings.update(overrides)
    return settings


# What a worker on a fake "instance" needs from the test's environment: the test plugin (as a
# real host would need it installed), and caches kept out of the real home.
WORKER_ENV = ["VOLTX_PLUGINS", "PYTHONPATH", "VOLTX_HOME", "VOLTX_CACHE_DIR"]


def write_project(root: Path, *, grace_s: float | None = None, **overrides: Any) -> Path:
    """A project folder under `root` whose backend is the fake Vast, with quick settings
    (`overrides` on top) and, with `grace_s`, a ``[budget]`` grace period for stops."""
    folder = root / "project"
    folder.mkdir()
    settings = quick_settings(
        root / "remote",
        status_interval_s=0.1,
        provision_timeout_s=30.0,
        forward_env=WORKER_ENV,
        **overrides,
    )
    lines = ["[project]", 'backend = "vast"', ""]
    if grace_s is not None:
        lines += ["[budget]", f"grace_s = {grace_s:g}", ""]
    lines += ["[backends.vast]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (folder / "voltx.toml").write_text("\n".join(lines) + "\n")
    return folder


def worker_env(fake: FakeVast) -> dict[str, str]:
    """The environment of a `voltx` subprocess that runs tests/plugins' slow pipeline on `fake`."""
    return subprocess_env(
        TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline", VAST_URL=fake.url, VAST_API_KEY=fake.api_key
    )


def run_events(project: Path, run_id: str) -> list[dict[str, object]]:
    """The events of run `run_id` in the project's ledger, in order."""
    folder = project / ".voltx" / "records" / "runs" / run_id / "events"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
