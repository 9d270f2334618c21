"""Ranks a backend launched itself (Ray Train on the ray backend): `run_job(..., rank=r)`.

Each rank has a job folder of its own and fetches the inputs there; rank 0 commits the outputs
and the checkpoints as a single process does, another rank reads rank 0's checkpoints (from the
store's folder, or restored from a remote store) and commits nothing. No cluster: the ranks run
here one after the other, which is all the worker's side of it needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voltx import PhaseContext, PhaseSpec
from voltx.job_document import JOB_FILE, RESULT_FILE, JobDocument
from voltx.plugins import registered
from voltx.store import ArtifactStore
from voltx.testing import memory_store_url
from voltx.testing.inprocess import phase_plugin
from voltx.worker import run_job

CHECKPOINT_STEP = 7


def record_rank(ctx: PhaseContext) -> None:
    """Write what this rank saw; rank 0 alone commits a checkpoint."""
    latest = ctx.checkpoints.latest()
    seen = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "resumed_from": None if latest is None else latest.step,
        "seed": (ctx.inputs["seed"] / "seed.txt").read_text(),
    }
    (ctx.outputs["rank_record"] / "seen.json").write_text(json.dumps(seen))
    if ctx.rank == 0:
        with ctx.checkpoints.save(CHECKPOINT_STEP) as folder:
            (folder / "state.txt").write_text("rank 0's state\n")


SPEC = PhaseSpec(
    id="ranks.record",
    name="record ranks",
    entry=f"{__name__}:record_rank",
    produces=("rank_record",),
)


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_rank_0_commits_and_rank_1_reads_its_checkpoint_and_commits_nothing(
    tmp_path: Path, kind: str
) -> None:
    url = f"file://{tmp_path / 'store'}" if kind == "file" else memory_store_url()
    store = ArtifactStore.open(url)
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "seed.txt").write_text("42\n")
    seed = store.add("seed", tmp_path / "seed").digest
    document = JobDocument(
        run_id="ranks",
        phase_id=SPEC.id,
        store=url,
        fingerprint="f" * 64,
        inputs={"seed": seed},
        processes=2,
    )
    seen = {}
    results = {}
    with registered(phase_plugin(SPEC)):
        for rank in (0, 1):  # rank 0 first, so that its checkpoint is there for rank 1
            folder = tmp_path / "ranks" / str(rank)
            folder.mkdir(parents=True)
            document.write(folder / JOB_FILE)
            assert run_job(folder, rank=rank) == 0, (folder / RESULT_FILE).read_text()
            results[rank] = json.loads((folder / RESULT_FILE).read_text())
            seen[rank] = json.loads((folder / "outputs" / "rank_record" / "seen.json").read_text())
    assert seen[0] == {"rank": 0, "world_size": 2, "resumed_from": None, "seed": "42\n"}
    assert seen[1] == {
        "rank": 1,
        "world_size": 2,
        "resumed_from": CHECKPOINT_STEP,
        "seed": "42\n",
    }
    committed = results[0]["outputs"]["rank_record"]
    record = store.get(committed, tmp_path / "committed") / "seen.json"
    assert json.loads(record.read_text())["rank"] == 0
    assert results[1]["status"] == "succeeded" and results[1]["outputs"] == {}


def save_a_checkpoint(ctx: PhaseContext) -> None:
    with ctx.checkpoints.save(1) as folder:
        (folder / "state.txt").write_text("state\n")


def test_a_rank_other_than_0_that_commits_a_checkpoint_fails(tmp_path: Path) -> None:
    spec = PhaseSpec(
        id="ranks.saver", name="saver", entry=f"{__name__}:save_a_checkpoint", produces=("out",)
    )
    url = f"file://{tmp_path / 'store'}"
    document = JobDocument(
        run_id="ranks", phase_id=spec.id, store=url, fingerprint="e" * 64, processes=2
    )
    document.write(tmp_path / JOB_FILE)
    with registered(phase_plugin(spec)):
        assert run_job(tmp_path, rank=1) == 1
    error = json.loads((tmp_path / RESULT_FILE).read_text())["error"]
    assert "rank 1 tried to commit checkpoint 1; only rank 0 does" in error
