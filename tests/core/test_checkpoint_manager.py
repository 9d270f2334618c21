"""CheckpointManager: atomic commit, the latest complete checkpoint, pruning, crash leftovers."""

from __future__ import annotations

import json

import pytest

from voltx.checkpoints import MANIFEST, CheckpointManager


def save(manager: CheckpointManager, step: int, payload: bytes | None = None) -> None:
    with manager.save(step) as folder:
        (folder / "model.safetensors").write_bytes(payload or f"weights {step}".encode())
        (folder / "state").mkdir()
        (folder / "state" / "optimizer.pt").write_bytes(b"o" * (100 + step))


def test_empty_manager_has_no_latest(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    assert manager.latest() is None
    assert manager.all() == []
    assert (tmp_path / "ckpt").is_dir()


def test_save_commits_a_folder_with_its_manifest(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")

    save(manager, 10)

    latest = manager.latest()
    assert latest is not None
    assert latest.step == 10
    assert latest.path == tmp_path / "ckpt" / "step-000000010"
    assert (latest.path / "model.safetensors").read_bytes() == b"weights 10"
    manifest = json.loads((latest.path / MANIFEST).read_text())
    assert manifest["step"] == 10
    assert {f["path"]: f["size"] for f in manifest["files"]} == {
        "model.safetensors": len(b"weights 10"),
        "state/optimizer.pt": 110,
    }
    assert (tmp_path / "ckpt" / "latest").read_text() == "step-000000010"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest", "step-000000010"]


def test_latest_is_the_newest_step(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", keep=5)
    for step in (1, 2, 10):
        save(manager, step)

    latest = manager.latest()
    assert latest is not None and latest.step == 10
    assert [c.step for c in manager.all()] == [1, 2, 10]


def test_keep_prunes_the_oldest(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", keep=2)
    for step in range(1, 6):
        save(manager, step)

    assert [c.step for c in manager.all()] == [4, 5]
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step-*")) == [
        "step-000000004",
        "step-000000005",
    ]


def test_saving_a_step_again_replaces_it(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    save(manager, 3, b"first")
    save(manager, 3, b"second")

    latest = manager.latest()
    assert latest is not None and latest.step == 3
    assert (latest.path / "model.safetensors").read_bytes() == b"second"
    assert len(manager.all()) == 1


def test_an_exception_inside_save_leaves_nothing(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    save(manager, 1)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    with pytest.raises(RuntimeError, match="disk full"), manager.save(2) as folder:
        (folder / "model.safetensors").write_bytes(b"half a tensor")
        raise RuntimeError("disk full")

    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    latest = manager.latest()
    assert latest is not None and latest.step == 1


def test_a_keyboard_interrupt_inside_save_leaves_nothing(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")

    with pytest.raises(KeyboardInterrupt), manager.save(1) as folder:
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    assert list((tmp_path / "ckpt").iterdir()) == []
    assert manager.latest() is None


def test_a_truncated_checkpoint_is_skipped_for_the_previous_one(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    save(manager, 1)
    save(manager, 2)
    weights = tmp_path / "ckpt" / "step-000000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3])  # the disk lost the end of the file

    latest = manager.latest()

    assert latest is not None
    assert latest.step == 1
    assert [c.step for c in manager.all()] == [1]


def test_a_checkpoint_with_a_missing_file_is_skipped(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    save(manager, 1)
    save(manager, 2)
    (tmp_path / "ckpt" / "step-000000002" / "state" / "optimizer.pt").unlink()

    latest = manager.latest()
    assert latest is not None and latest.step == 1


def test_a_corrupt_manifest_is_skipped(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    save(manager, 1)
    save(manager, 2)
    (tmp_path / "ckpt" / "step-000000002" / MANIFEST).write_text('{"step": 2, "fil')

    latest = manager.latest()
    assert latest is not None and latest.step == 1


def test_a_stale_staging_folder_is_ignored_and_cleaned(tmp_path):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root)
    save(manager, 1)
    # A writer died while writing step 2: its staging folder even holds a manifest.
    stale = root / ".staging-2-deadbeef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    (stale / MANIFEST).write_text(json.dumps({"step": 2, "files": []}))
    (root / ".latest-deadbeef").write_text("step-000000002")

    latest = manager.latest()
    assert latest is not None and latest.step == 1
    assert [c.step for c in manager.all()] == [1]

    save(manager, 3)  # the next commit clears the leftovers
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000001", "step-000000003"]
    latest = manager.latest()
    assert latest is not None and latest.step == 3


def test_a_dangling_latest_pointer_falls_back_to_the_folders(tmp_path):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root, keep=5)
    save(manager, 1)
    save(manager, 2)
    (root / "latest").write_text("step-000000099")

    latest = manager.latest()
    assert latest is not None and latest.step == 2


def test_keep_must_be_at_least_one(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        CheckpointManager(tmp_path / "ckpt", keep=0)
