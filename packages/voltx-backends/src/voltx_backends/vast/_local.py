"""What the Vast backend keeps on this machine, under ``<work_dir>/vast/``.

``keys/<run>/id_ed25519``
    the run's SSH key pair (0600, folder 0700). The instance's onstart installs the public half;
    a restarted orchestrator of the same run finds the private half here and can log in to the
    instances it adopts. Deleted when the backend closes with none of the run's instances left.
``known_hosts/vast-<instance>``
    the instance's host key, pinned on first connection (``accept-new``) and deleted with the
    instance: Vast reuses addresses and ports, so one shared file would soon hold stale keys.
``leases/<label>.json``
    who owns the instance of a label: host, pid and the pid's start time, and a heartbeat. A
    lease is written before the rental is asked for, so ``voltx vast reap`` never takes an
    instance out from under a live run, even one still waiting for the API's answer.
``jobs/<job_id>/``
    a finished job's log, ``result.json`` and final status, kept after its instance is gone, and
    the SSH job's ref while it runs (how a restarted orchestrator re-attaches).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.errors import BackendError

KEY_NAME = "id_ed25519"
# One line per pooled machine given back: what its prep, idle and busy time cost.
MACHINES_FILE = "machines.jsonl"
# A lease whose heartbeat is older than this, held from another machine, is considered dead.
LEASE_STALE_S = 600.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    """`text` usable as one file name."""
    return _SAFE_NAME.sub("_", text)[:200] or "_"


def write_json(path: Path, data: Any) -> None:
    """Write `data` to `path` whole or not at all (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None where /proc cannot say.

    Recorded beside the pid so that a reused pid is not mistaken for the orchestrator.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@attrs.frozen
class Owner:
    """A process that holds leases: which machine, which pid, started when."""

    host: str
    pid: int
    pid_start: int | None

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def alive(self, heartbeat: float | None) -> bool:
        """Whether the process still runs (checked directly on this machine; elsewhere judged
        by the heartbeat's age)."""
        if self.host != socket.gethostname():
            return heartbeat is not None and time.time() - heartbeat < LEASE_STALE_S
        if not _pid_alive(self.pid):
            return False
        if self.pid_start is None:
            return True
        start = _process_start(self.pid)
        return start is None or start == self.pid_start


@attrs.frozen
class LeaseRecord:
    """What a lease file says."""

    label: str
    owner: Owner
    run_id: str | None
    instance_id: int | None
    heartbeat: float | None

    def alive(self) -> bool:
        """Whether its owner still runs."""
        return self.owner.alive(self.heartbeat)


class LocalState:
    """The Vast backend's files on this machine (see the module docstring)."""

    def __init__(self, work_dir: Path) -> None:
        self.root = Path(work_dir) / "vast"

    # -- SSH keys and host keys -------------------------------------------------------------

    def run_key(self, run_id: str) -> tuple[Path, str]:
        """The run's private key file and public key line, made on first use."""
        folder = self.root / "keys" / safe_name(run_id)
        private = folder / KEY_NAME
        public = folder / f"{KEY_NAME}.pub"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The jobs of a run are provisioned in parallel threads: without the lock two of them
        # both make a key, and an instance gets the public half of a pair whose private half
        # the other has just replaced (its SSH then refuses our key).
        with _exclusive(folder / ".lock"):
            if not private.exists() or not public.exists():
                folder.chmod(0o700)
                tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=folder))
                try:
                    result = subprocess.run(
                        [
                            "ssh-keygen",
                            "-q",
                            "-t",
                            "ed25519",
                            "-N",
                            "",
                            "-C",
                            f"voltx-{safe_name(run_id)}",
                            "-f",
                            str(tmp / KEY_NAME),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=30,
                    )
                    if result.returncode != 0:
                        raise BackendError(
                            f"ssh-keygen could not make the run's key: {result.stderr.strip()}",
                            "vast",
                        )
                    (tmp / KEY_NAME).chmod(0o600)
                    # Public half last: a key without its .pub is made again, never half used.
                    os.replace(tmp / KEY_NAME, private)
                    os.replace(tmp / f"{KEY_NAME}.pub", public)
                except OSError as exc:
                    raise BackendError(f"cannot make the run's SSH key: {exc}", "vast") from exc
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            return private, public.read_text().strip()

    def remove_run_key(self, run_id: str) -> None:
        """Forget a run's key pair (its instances are gone)."""
        shutil.rmtree(self.root / "keys" / safe_name(run_id), ignore_errors=True)

    def known_hosts(self, instance_id: int) -> Path:
        """The file that pins the host key of one instance."""
        folder = self.root / "known_hosts"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder / f"vast-{int(instance_id)}"

    # -- leases ----------------------------------------------------------------------------

    def _lease_path(self, label: str) -> Path:
        return self.root / "leases" / f"{safe_name(label)}.json"

    def read_lease(self, label: str) -> LeaseRecord | None:
        """The lease on `label`, or None."""
        data = read_json(self._lease_path(label))
        if not isinstance(data, dict):
            return None
        try:
            owner = Owner(str(data["host"]), int(data["pid"]), data.get("pid_start"))
            instance = data.get("instance_id")
            return LeaseRecord(
                label=str(data["label"]),
                owner=owner,
                run_id=data.get("run_id"),
                instance_id=int(instance) if instance is not None else None,
                heartbeat=float(data["heartbeat"]) if data.get("heartbeat") else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def leases(self) -> dict[str, LeaseRecord]:
        """Every lease, by label."""
        found: dict[str, LeaseRecord] = {}
        for path in sorted((self.root / "leases").glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict) and isinstance(data.get("label"), str):
                record = self.read_lease(data["label"])
                if record is not None:
                    found[record.label] = record
        return found

    def write_lease(self, label: str, run_id: str | None, instance_id: int | None) -> None:
        """Record this process as the owner of `label` (and its instance, once known)."""
        owner = Owner.current()
        write_json(
            self._lease_path(label),
            {
                "label": label,
                "host": owner.host,
                "pid": owner.pid,
                "pid_start": owner.pid_start,
                "run_id": run_id,
                "instance_id": instance_id,
                "heartbeat": time.time(),
            },
        )

    def touch_lease(self, label: str, run_id: str | None, instance_id: int | None) -> None:
        """Refresh the heartbeat of our lease, keeping the instance id it already names."""
        record = self.read_lease(label)
        if record is not None and record.owner != Owner.current() and record.alive():
            return
        if instance_id is None and record is not None:
            instance_id = record.instance_id
        self.write_lease(label, run_id, instance_id)

    def held_by_other(self, label: str) -> LeaseRecord | None:
        """The lease on `label` when another live process holds it, else None."""
        record = self.read_lease(label)
        if record is None or record.owner == Owner.current() or not record.alive():
            return None
        return record

    def release_lease(self, label: str) -> None:
        """Drop our lease on `label` (the instance is gone)."""
        record = self.read_lease(label)
        if record is not None and record.owner != Owner.current() and record.alive():
            return  # another live process took it over: not ours to drop
        with contextlib.suppress(FileNotFoundError):
            self._lease_path(label).unlink()

    # -- pooled machines -------------------------------------------------------------------

    def record_machine(self, record: Mapping[str, Any]) -> None:
        """Append what a pooled machine cost (prep, idle, busy) to ``machines.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / MACHINES_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(dict(record), sort_keys=True) + "\n")

    def machine_records(self) -> list[dict[str, Any]]:
        """Every record `record_machine` wrote, oldest first (unreadable lines skipped)."""
        try:
            lines = (self.root / MACHINES_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    # -- finished jobs ---------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        """The folder that keeps what a job left once its instance is gone."""
        return self.root / "jobs" / safe_name(job_id)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if absent): threads and processes take turns."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
