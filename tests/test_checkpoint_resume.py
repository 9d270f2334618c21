"""A phase whose store is elsewhere resumes, on a fresh machine, from the store's checkpoint."""

from __future__ import annotations

from typing import Any

import voltx
from voltx import PhaseSpec
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, phase_plugin, registered_plugin

pytest_plugins = ["voltx.testing.fixtures"]

STEPS = 6
crash_at: list[int] = []


def _count(ctx: Any) -> None:
    """Counts to STEPS, one checkpoint per step; crashes once where the test says."""
    latest = ctx.checkpoints.latest()
    start = latest.step if latest is not None else 0
    total = int((latest.path / "total").read_text()) if latest is not None else 0
    for step in range(start + 1, STEPS + 1):
        total += step
        with ctx.checkpoints.save(step) as folder:
            (folder / "total").write_text(str(total))
        if crash_at and step == crash_at[0]:
            crash_at.clear()
            raise RuntimeError(f"machine lost after step {step}")
    (ctx.outputs["sum"] / "sum.txt").write_text(f"{total} resumed-from={start}")


SPEC = PhaseSpec(id="t.count", name="count", entry=_count, produces=("sum",))


def test_a_new_attempt_resumes_from_the_checkpoint_in_the_store(
    memory_store: ArtifactStore, tmp_path: Any
) -> None:
    crash_at.append(4)
    with registered_plugin(phase_plugin(SPEC)):
        # Each run gets its own work folder: nothing of the first machine is left for the second.
        first = voltx.run(
            "t.count", backend=InProcessBackend(tmp_path / "a"), store=memory_store.url
        )
        assert not first.ok
        second = voltx.run(
            "t.count", backend=InProcessBackend(tmp_path / "b"), store=memory_store.url
        )
    assert second.ok
    folder = memory_store.get("sum", tmp_path / "out")
    assert (folder / "sum.txt").read_text() == f"{sum(range(1, STEPS + 1))} resumed-from=4"


def test_force_discards_the_checkpoints_mirrored_in_the_store(
    memory_store: ArtifactStore, tmp_path: Any
) -> None:
    with registered_plugin(phase_plugin(SPEC)):
        first = voltx.run(
            "t.count", backend=InProcessBackend(tmp_path / "a"), store=memory_store.url
        )
        assert first.ok
        assert memory_store.list_files("checkpoints/t.count")  # the mirror a resume would use
        forced = voltx.run(
            "t.count",
            backend=InProcessBackend(tmp_path / "b"),
            store=memory_store.url,
            force=True,
        )
    assert forced.ok and forced.phases["t.count"].status == "succeeded"
    folder = memory_store.get("sum", tmp_path / "out")
    # Counted again from the start: the first run's final checkpoint was not restored.
    assert (folder / "sum.txt").read_text() == f"{sum(range(1, STEPS + 1))} resumed-from=0"
