"""The run lease on a folder store and in memory: one holder, stale leases taken over once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from voltx.errors import RunLeaseError
from voltx.run_lease import LEASE_RECORD, TAKEOVER_RECORDS, RunLease
from voltx.store import ArtifactStore
from voltx.testing import memory_store_url


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    url = str(tmp_path / "store") if request.param == "folder" else memory_store_url()
    return ArtifactStore.open(url)


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _stale_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "lease_id": "f" * 32,
        "run_id": "old-run",
        "host": socket.gethostname(),
        "pid": _dead_pid(),
        "since": "2026-01-01T00:00:00Z",
        "heartbeat_ns": time.time_ns(),
    }
    record.update(changes)
    return record


def test_one_holder_at_a_time_and_the_lease_comes_back(store: ArtifactStore) -> None:
    with RunLease(store, "first") as lease:
        record = store.read_record(LEASE_RECORD)
        assert record is not None and record["run_id"] == "first"
        assert record["lease_id"] == lease.lease_id  # not redacted as if it were a secret
        with pytest.raises(RunLeaseError) as refused:
            RunLease(store, "second").acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert f"run first (pid {record['pid']} on {record['host']}, since " in message
    assert store.read_record(LEASE_RECORD) is None
    with RunLease(store, "third"):
        pass


def test_of_many_runs_starting_together_exactly_one_gets_the_lease(store: ArtifactStore) -> None:
    leases = [RunLease(store, f"run-{index}") for index in range(8)]
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(leases))

    def take(lease: RunLease) -> None:
        start.wait()
        try:
            lease.acquire()
            outcomes[lease.run_id] = "held"
        except RunLeaseError:
            outcomes[lease.run_id] = "refused"

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["held"] + ["refused"] * 7
    for lease in leases:
        lease.release()
    assert store.read_record(LEASE_RECORD) is None


def test_a_dead_owners_lease_is_taken_over_once(store: ArtifactStore) -> None:
    store.write_record(LEASE_RECORD, _stale_record(), create=True)
    with RunLease(store, "taker") as lease:
        holder = lease.holder()
        assert holder is not None and holder.run_id == "taker"
        assert store.list_records(TAKEOVER_RECORDS) == []  # the claim is gone once done


def test_a_claim_left_by_a_taker_that_died_does_not_block_forever(store: ArtifactStore) -> None:
    store.write_record(LEASE_RECORD, _stale_record(), create=True)
    store.write_record(
        f"{TAKEOVER_RECORDS}/{'f' * 32}.json", _stale_record(run_id="dead-taker"), create=True
    )
    with RunLease(store, "taker") as lease:
        holder = lease.holder()
        assert holder is not None and holder.run_id == "taker"


def test_a_live_takers_claim_is_respected(store: ArtifactStore) -> None:
    store.write_record(LEASE_RECORD, _stale_record(), create=True)
    live = _stale_record(run_id="live-taker", pid=os.getpid(), process_start=None)
    store.write_record(f"{TAKEOVER_RECORDS}/{'f' * 32}.json", live, create=True)
    with pytest.raises(RunLeaseError, match="taking over the stale lease of run old-run"):
        RunLease(store, "second-taker").acquire()


def test_a_damaged_lease_record_is_taken_over(store: ArtifactStore, tmp_path: Path) -> None:
    store._backing.write_bytes(f"records/{LEASE_RECORD}", b'{"lease_id": "abc", "ru')
    with RunLease(store, "taker") as lease:
        holder = lease.holder()
        assert holder is not None and holder.run_id == "taker"


def test_the_heartbeat_keeps_the_lease_fresh(store: ArtifactStore) -> None:
    with RunLease(store, "beating", heartbeat_every_s=0.05):
        first = store.read_record(LEASE_RECORD)
        time.sleep(0.3)
        later = store.read_record(LEASE_RECORD)
    assert first is not None and later is not None
    assert later["heartbeat_ns"] > first["heartbeat_ns"]
    assert later["since"] == first["since"]
    assert json.dumps(later)  # plain data
