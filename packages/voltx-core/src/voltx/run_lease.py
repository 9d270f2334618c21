"""One run at a time per store: the run lease.

`voltx run` takes the store's lease before it touches the ledger or starts a job, and gives it back
when the run ends; a second `run` on the same store refuses in one line naming the owner. Reads
(`status`, `plan`, `logs`, `artifacts list/get`) take no lease. The lease is one record,
``records/runs/lease.json``:

    {"lease_id": "...", "run_id": "...", "host": "...", "pid": 123, "process_start": 456,
     "since": "2026-...Z", "heartbeat": "2026-...Z", "heartbeat_ns": 1764...}

It is created create-only (`ArtifactStore.write_record(create=True)`: ``O_EXCL``-style hard link on
a folder store, a conditional PUT ``If-None-Match: *`` on S3), so of two runs starting together
exactly one gets it. While the run lasts a thread rewrites its heartbeat.

A lease is stale when its owner is gone: on this host, its process no longer runs (what `voltx
status` checks for a dead orchestrator); on another host, its heartbeat is older than
`STALE_AFTER_S`. A stale lease is taken over with a warning. Taking over is itself create-only: the
taker first creates ``records/runs/lease-takeover/<lease_id>.json`` for the stale lease's id, and
only the process that created it removes the stale lease, so two runs that find the same stale
lease cannot both replace it. See `docs/concepts.md` ("One run at a time").
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from voltx.errors import ManifestError, RunLeaseError, VoltxError
from voltx.ledger import current_owner, owner_alive
from voltx.store import ArtifactStore
from voltx.store.artifacts import utc_now

log = structlog.get_logger(__name__)

LEASE_RECORD = "runs/lease.json"
TAKEOVER_RECORDS = "runs/lease-takeover"
# How often a holder rewrites its heartbeat, and how old a heartbeat must be before a run on
# another host treats the lease as abandoned: several missed beats, so a slow store or a paused
# laptop does not hand a live run's store to a second run.
HEARTBEAT_EVERY_S = 15.0
STALE_AFTER_S = 120.0


@attrs.frozen
class LeaseHolder:
    """Who holds a store's lease, as its record says."""

    lease_id: str
    run_id: str
    host: str
    pid: int
    since: str
    heartbeat_ns: int
    process_start: int | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LeaseHolder:
        start = record.get("process_start")
        return cls(
            lease_id=str(record.get("lease_id", "")),
            run_id=str(record.get("run_id", "?")),
            host=str(record.get("host", "?")),
            pid=_int(record.get("pid")),
            since=str(record.get("since", "?")),
            heartbeat_ns=_int(record.get("heartbeat_ns")),
            process_start=start if isinstance(start, int) else None,
        )

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since})"

    def stale_reason(self, now_ns: int, stale_after_s: float) -> str | None:
        """Why this holder is gone, or None while it may still run."""
        alive = owner_alive(
            {"host": self.host, "pid": self.pid, "process_start": self.process_start}
        )
        if alive is False:
            return f"its process (pid {self.pid} on {self.host}) is gone"
        if alive is None:
            age_s = (now_ns - self.heartbeat_ns) / 1e9
            if age_s > stale_after_s:
                return f"its last heartbeat is {age_s:.0f}s old (more than {stale_after_s:.0f}s)"
        return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class RunLease:
    """The lease one run holds on one store; a context manager that heartbeats while held."""

    def __init__(
        self,
        store: ArtifactStore,
        run_id: str,
        *,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lease_id = uuid.uuid4().hex
        self.heartbeat_every_s = heartbeat_every_s
        self.stale_after_s = stale_after_s
        self.since = utc_now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease, or take over a stale one; RunLeaseError when a live run holds it."""
        if self.store.write_record(LEASE_RECORD, self._record(), create=True):
            return self._start_heartbeat()
        holder = self.holder()
        if holder is None:
            # Given back between our create and our read: one more try, then the race is real.
            if self.store.write_record(LEASE_RECORD, self._record(), create=True):
                return self._start_heartbeat()
            holder = self.holder()
        if holder is None:
            raise RunLeaseError(self.store.url, "another run took the lease just now")
        reason = holder.stale_reason(time.time_ns(), self.stale_after_s)
        if reason is None:
            raise RunLeaseError(self.store.url, f"{holder.describe()} is running on it", holder)
        self._take_over(holder, reason)
        self._start_heartbeat()

    def _take_over(self, stale: LeaseHolder, reason: str) -> None:
        claim = f"{TAKEOVER_RECORDS}/{stale.lease_id or 'unnamed'}.json"
        if not self._claim(claim):
            raise RunLeaseError(
                self.store.url, f"another run is taking over the stale lease of {stale.describe()}"
            )
        self.store.delete_record(LEASE_RECORD)
        if not self.store.write_record(LEASE_RECORD, self._record(), create=True):
            holder = self.holder()
            who = holder.describe() if holder else "another run"
            raise RunLeaseError(self.store.url, f"{who} took the lease first", holder)
        self.store.delete_record(claim)
        log.warning(
            "took over a stale run lease",
            store=self.store.url,
            previous=stale.describe(),
            reason=reason,
        )

    def _claim(self, claim: str) -> bool:
        """Create the takeover claim; a claim left by a taker that died since is replaced."""
        if self.store.write_record(claim, self._record(), create=True):
            return True
        try:
            record = self.store.read_record(claim)
        except ManifestError:
            record = {}
        claimant = LeaseHolder.from_record(record or {})
        if claimant.stale_reason(time.time_ns(), self.stale_after_s) is None:
            return False
        self.store.delete_record(claim)
        return self.store.write_record(claim, self._record(), create=True)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        holder = self.holder_or_none()
        if holder is not None and holder.lease_id == self.lease_id:
            try:
                self.store.delete_record(LEASE_RECORD)
            except VoltxError as exc:
                # The run's own outcome matters more; the lease goes stale and is taken over.
                log.warning("could not give the run lease back", error=str(exc))

    def __enter__(self) -> RunLease:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    # -- reading ---------------------------------------------------------------------------

    def holder(self) -> LeaseHolder | None:
        """The current holder; a damaged lease record counts as a holder nobody can name."""
        try:
            record = self.store.read_record(LEASE_RECORD)
        except ManifestError:
            # Half-written by a crashed writer on a store without atomic puts: nobody owns it.
            return LeaseHolder("damaged", run_id="?", host="?", pid=0, since="?", heartbeat_ns=0)
        return None if record is None else LeaseHolder.from_record(record)

    def holder_or_none(self) -> LeaseHolder | None:
        try:
            return self.holder()
        except Exception:  # giving back must not hide the error the run is ending with
            return None

    # -- heartbeat -------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        owner = current_owner()
        return {
            "lease_id": self.lease_id,
            "run_id": self.run_id,
            "host": owner["host"],
            "pid": owner["pid"],
            "process_start": owner["process_start"],
            "since": self.since,
            "heartbeat": utc_now(),
            "heartbeat_ns": time.time_ns(),
        }

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="voltx-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every_s):
            try:
                holder = self.holder()
                if holder is None or holder.lease_id != self.lease_id:
                    who = holder.describe() if holder else "nobody"
                    log.error("run lease lost; another run may share the store", holder=who)
                    return
                self.store.write_record(LEASE_RECORD, self._record())
            except Exception as exc:  # a store hiccup: the next beat tries again
                log.warning("run lease heartbeat failed", error=str(exc))
