"""Checkpoints mirrored to a store that is not on this machine, and restored on another."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from voltx.checkpoint_sync import CheckpointSync, discard_checkpoints, store_prefix
from voltx.checkpoints import CheckpointManager
from voltx.errors import StoreError
from voltx.store import ArtifactStore
from voltx.testing import memory_store_url

PREFIX = store_prefix("2.1", "ab" * 32)


@pytest.fixture
def store() -> ArtifactStore:
    return ArtifactStore.open(memory_store_url())


def save(manager: CheckpointManager, step: int, **files: bytes) -> None:
    with manager.save(step) as folder:
        for name, data in files.items():
            (folder / name).write_bytes(data)


def test_each_checkpoint_reaches_the_store_and_restores_elsewhere(
    tmp_path: Path, store: ArtifactStore
) -> None:
    manager = CheckpointManager(tmp_path / "machine-a", keep=2)
    sync = CheckpointSync(store, PREFIX, manager)
    (manager.root / "stages").mkdir()
    (manager.root / "stages" / "stage1.bin").write_bytes(b"finished stage")
    for step in (1, 2, 3):
        save(manager, step, **{"weights.bin": bytes([step]) * 100, "state.pt": b"s%d" % step})
        assert sync.flush(timeout_s=30)
    assert sync.close(timeout_s=30)
    assert sync.failures == []
    assert sync.uploaded_steps == [1, 2, 3]
    assert json.loads(store.read_bytes(f"{PREFIX}/latest.json") or b"") == {"step": 3}
    # Only the newest `keep` steps stay, and only the files they name.
    steps = sorted(p for p in store.list_files(PREFIX) if "/step-" in p)
    assert [p.rsplit("/", 1)[-1] for p in steps] == ["step-000000002.json", "step-000000003.json"]
    assert len(store.list_files(f"{PREFIX}/files")) == 5  # 2 x weights, 2 x state, 1 stage

    other = CheckpointManager(tmp_path / "machine-b", keep=2)
    restored = CheckpointSync(store, PREFIX, other).restore()
    assert restored is not None and restored.step == 3
    latest = other.latest()
    assert latest is not None and latest.step == 3
    assert (latest.path / "weights.bin").read_bytes() == bytes([3]) * 100
    assert (latest.path / "state.pt").read_bytes() == b"s3"
    assert (other.root / "stages" / "stage1.bin").read_bytes() == b"finished stage"
    assert not list(other.root.glob(".staging-*"))


def test_restore_leaves_a_machine_that_has_its_own_checkpoint_alone(
    tmp_path: Path, store: ArtifactStore
) -> None:
    first = CheckpointManager(tmp_path / "a")
    sync = CheckpointSync(store, PREFIX, first)
    save(first, 5, **{"w": b"remote"})
    sync.close()
    local = CheckpointManager(tmp_path / "b")
    save(local, 2, **{"w": b"local"})
    assert CheckpointSync(store, PREFIX, local).restore() is None
    assert local.latest() is not None and local.latest().step == 2  # type: ignore[union-attr]


def test_nothing_in_the_store_restores_nothing(tmp_path: Path, store: ArtifactStore) -> None:
    manager = CheckpointManager(tmp_path / "a")
    assert CheckpointSync(store, PREFIX, manager).restore() is None
    assert manager.latest() is None


def test_a_damaged_newest_step_falls_back_to_the_one_before(
    tmp_path: Path, store: ArtifactStore
) -> None:
    manager = CheckpointManager(tmp_path / "a", keep=3)
    sync = CheckpointSync(store, PREFIX, manager)
    save(manager, 1, **{"w": b"one"})
    assert sync.close()
    sync = CheckpointSync(store, PREFIX, manager)
    save(manager, 2, **{"w": b"two"})
    assert sync.close()
    # The newest step's file is replaced by other bytes: its digest no longer matches.
    document = json.loads(store.read_bytes(f"{PREFIX}/step-000000002.json") or b"")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(b"not two")
    store.put_file(f"{PREFIX}/files/{document['files'][0]['sha256']}", damaged)

    other = CheckpointManager(tmp_path / "b")
    restored = CheckpointSync(store, PREFIX, other).restore()
    assert restored is not None and restored.step == 1
    assert (restored.path / "w").read_bytes() == b"one"


@pytest.mark.parametrize(
    "damage",
    [
        b'{"files": [{"path": "w", "sha',
        b"[]",
        b'{"files": 3, "extras": []}',
        b'{"files": [7], "extras": []}',
        b'{"files": [{"path": "../w", "sha256": "x"}], "extras": []}',
    ],
    ids=["truncated", "not-an-object", "files-not-a-list", "entry-not-an-object", "escaping"],
)
def test_a_damaged_step_document_falls_back_to_the_step_before(
    tmp_path: Path, store: ArtifactStore, damage: bytes
) -> None:
    manager = CheckpointManager(tmp_path / "a", keep=3)
    for step in (1, 2):
        sync = CheckpointSync(store, PREFIX, manager)
        save(manager, step, **{"w": b"step %d" % step})
        assert sync.close()
    store.put_bytes(f"{PREFIX}/step-000000002.json", damage)

    other = CheckpointManager(tmp_path / "b")
    restored = CheckpointSync(store, PREFIX, other).restore()
    assert restored is not None and restored.step == 1
    assert (restored.path / "w").read_bytes() == b"step 1"


@pytest.mark.parametrize("pointer", [b'{"st', b'{"step": "2"}', b"null", b'{"step": true}'])
def test_a_damaged_latest_pointer_costs_only_its_hint(
    tmp_path: Path, store: ArtifactStore, pointer: bytes
) -> None:
    manager = CheckpointManager(tmp_path / "a", keep=3)
    for step in (1, 2):
        sync = CheckpointSync(store, PREFIX, manager)
        save(manager, step, **{"w": b"step %d" % step})
        assert sync.close()
    store.put_bytes(f"{PREFIX}/latest.json", pointer)

    restored = CheckpointSync(store, PREFIX, CheckpointManager(tmp_path / "b")).restore()
    assert restored is not None and restored.step == 2


def test_discarded_checkpoints_leave_nothing_to_resume_from(
    tmp_path: Path, store: ArtifactStore
) -> None:
    manager = CheckpointManager(tmp_path / "a")
    sync = CheckpointSync(store, PREFIX, manager)
    save(manager, 3, **{"w": b"old run"})
    assert sync.close()
    assert store.list_files(PREFIX)
    discard_checkpoints(store, PREFIX, None, structlog.get_logger())
    assert store.list_files(PREFIX) == []
    assert CheckpointSync(store, PREFIX, CheckpointManager(tmp_path / "b")).restore() is None

    # A folder store's checkpoint folder is emptied in place (the manager keeps using it).
    local = CheckpointManager(tmp_path / "local")
    save(local, 4, **{"w": b"old run"})
    (local.root / "stages").mkdir()
    (local.root / "stages" / "stage1.bin").write_bytes(b"old stage")
    discard_checkpoints(store, PREFIX, local.root, structlog.get_logger())
    assert local.root.is_dir() and list(local.root.iterdir()) == []
    assert CheckpointManager(local.root).latest() is None


def test_while_an_upload_runs_only_the_newest_checkpoint_waits(
    tmp_path: Path, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    uploading = threading.Event()
    put_file = store.put_file

    def slow_put(path: str, source: Path) -> None:
        uploading.set()
        assert release.wait(30)
        put_file(path, source)

    monkeypatch.setattr(store, "put_file", slow_put)
    manager = CheckpointManager(tmp_path / "a", keep=1)
    sync = CheckpointSync(store, PREFIX, manager)
    save(manager, 1, **{"w": b"1"})
    assert uploading.wait(30)
    for step in (2, 3, 4):
        save(manager, step, **{"w": str(step).encode()})
    # Step 1 is in flight and pinned; 2 and 3 were dropped for 4, the only one waiting.
    snapshots = sorted(p.name.split("-")[0] for p in (manager.root / ".sync").iterdir())
    assert snapshots == ["1", "4"]
    release.set()
    assert sync.close(timeout_s=30)
    assert sync.uploaded_steps == [1, 4]
    assert not (manager.root / ".sync").exists()


def test_an_unreachable_store_costs_a_warning_not_the_training(
    tmp_path: Path, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: Any) -> None:
        raise StoreError("cannot upload: connection refused")

    monkeypatch.setattr(store, "put_file", refuse)
    manager = CheckpointManager(tmp_path / "a")
    sync = CheckpointSync(store, PREFIX, manager)
    save(manager, 1, **{"w": b"1"})
    assert sync.close(timeout_s=30)
    assert sync.failures and "connection refused" in sync.failures[0]
    assert manager.latest() is not None
    assert store.read_bytes(f"{PREFIX}/latest.json") is None


def test_loose_files_stay_inside_their_area(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for path in ("refs/code_encoder", "checkpoints/../refs/x", "/checkpoints/a", "blobs/a"):
        with pytest.raises(StoreError):
            store.put_file(path, source)
