"""Data parallel under torchrun: a phase declaring ``Resources(processes=N)`` runs as N ranks.

The phase is 5.1 on its tiny profile (2 CPU ranks over gloo), run by ``voltx worker`` itself as
a backend would run it: the ranks give the single-process result, only rank 0 commits, a stop
request reaches every rank, and a SIGKILL of one rank ends the attempt with no hang and a rerun
resumes to the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import attrs
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

import voltx  # noqa: E402
from _support import wait_for  # noqa: E402
from phases._scaling import add_inputs, long_tiny, start_worker, tiny, write_job  # noqa: E402
from voltx import Resources  # noqa: E402
from voltx.checkpoint_sync import store_prefix  # noqa: E402
from voltx.data_parallel import FollowerCheckpoints  # noqa: E402
from voltx.job_document import JobDocument  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTPUTS = ("vfn_200m", "vfn_500m")


@pytest.fixture
def store(tmp_path: Path) -> tuple[ArtifactStore, dict[str, str]]:
    opened = ArtifactStore.open(f"file://{tmp_path / 'store'}")
    return opened, add_inputs(opened, tmp_path / "inputs")


def _run(job_dir: Path, timeout: float = 240) -> dict[str, object]:
    worker = start_worker(job_dir)
    worker.wait(timeout=timeout)
    result: dict[str, object] = json.loads((job_dir / "result.json").read_text())
    return result


def _weights(store: ArtifactStore, digest: str, target: Path) -> dict[str, torch.Tensor]:
    folder = store.get(digest, target)
    return load_file(str(folder / "scaled_vfn.safetensors"))


def _checkpoint_steps(store: ArtifactStore, fingerprint: str) -> list[str]:
    root = store.local_dir(*store_prefix("5.1", fingerprint).split("/"))
    assert root is not None
    return sorted(p.name for p in root.glob("step-*"))


def test_resources_processes_is_validated_and_travels_in_the_job_document() -> None:
    with pytest.raises(ValueError, match="processes must be at least 1"):
        Resources(processes=0)
    document = JobDocument(run_id="r", phase_id="5.1", store="memory://x", fingerprint="f")
    assert JobDocument.from_json(attrs.evolve(document, processes=2).to_json()).processes == 2
    # A document written before the field existed still reads, as one process.
    legacy = json.loads(document.to_json())
    del legacy["processes"]
    assert JobDocument.from_json(json.dumps(legacy)).processes == 1


def test_a_rank_other_than_0_cannot_commit_a_checkpoint(tmp_path: Path) -> None:
    follower = FollowerCheckpoints(tmp_path, rank=1)
    with pytest.raises(RuntimeError, match="only rank 0"), follower.save(3):
        pass
    assert follower.latest() is None and not list(tmp_path.iterdir())


def test_two_gloo_ranks_equal_one_process_and_only_rank_0_commits(
    tmp_path: Path, store: tuple[ArtifactStore, dict[str, str]]
) -> None:
    opened, inputs = store
    config = tiny()
    results = {}
    for processes in (1, 2):
        job = write_job(
            tmp_path / f"job-{processes}",
            opened,
            inputs,
            config,
            processes=processes,
            fingerprint=f"ranks-{processes}",
        )
        results[processes] = _run(job)
        assert results[processes]["status"] == "succeeded", (job / "log").read_text()[-3000:]
    one, two = (results[p]["outputs"] for p in (1, 2))
    assert isinstance(one, dict) and isinstance(two, dict)
    for name in OUTPUTS:
        single = _weights(opened, one[name], tmp_path / "one" / name)
        ranked = _weights(opened, two[name], tmp_path / "two" / name)
        for key, value in single.items():
            assert torch.allclose(ranked[key], value, atol=1e-5, rtol=1e-4), key
    # The same global batch gives the same losses, step by step.
    rows = {
        p: json.loads(
            (
                opened.get(results[p]["outputs"]["vfn_scaling_report"], tmp_path / f"r{p}")
                / "metrics.json"
            ).read_text()
        )["rows"]  # type: ignore[index]
        for p in (1, 2)
    }
    losses = [(a["loss"], b["loss"]) for a, b in zip(rows[1], rows[2], strict=True) if "loss" in a]
    assert losses and all(abs(a - b) <= 1e-5 * max(1.0, abs(a)) for a, b in losses)
    # Rank 0 alone wrote: rank 1's scratch holds no output file, and the checkpoints are those
    # of the single-process run (rank 1 committing one would have failed the run).
    rank_one = tmp_path / "job-2" / "ranks" / "1"
    assert not [p for p in (rank_one / "outputs").rglob("*") if p.is_file()]
    assert _checkpoint_steps(opened, "ranks-2") == _checkpoint_steps(opened, "ranks-1")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_pids(worker: int) -> list[int]:
    """The ranks: grandchildren of the worker (worker -> torchrun -> ranks)."""
    return [rank for agent in _children(worker) for rank in _children(agent)]


def _latest_step(store: ArtifactStore, fingerprint: str) -> int:
    steps = _checkpoint_steps(store, fingerprint)
    return int(steps[-1].removeprefix("step-")) if steps else -1


def test_sigkill_of_one_rank_ends_the_attempt_and_the_rerun_resumes_to_the_same_bytes(
    tmp_path: Path, store: tuple[ArtifactStore, dict[str, str]]
) -> None:
    opened, inputs = store
    config = long_tiny(steps=150)
    reference = _run(
        write_job(tmp_path / "ref", opened, inputs, config, processes=2, fingerprint="ref")
    )
    assert reference["status"] == "succeeded"

    job = write_job(tmp_path / "a1", opened, inputs, config, processes=2, fingerprint="killed")
    worker = start_worker(job)
    wait_for(
        lambda: _latest_step(opened, "killed") >= 20 and len(_rank_pids(worker.pid)) == 2,
        timeout=120,
    )
    victim = _rank_pids(worker.pid)[1]
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    worker.wait(timeout=120)  # no hang: the other rank and torchrun exit
    assert time.monotonic() - started < 100
    failed = json.loads((job / "result.json").read_text())
    assert failed["status"] == "failed" and "ranks failed" in failed["error"]
    wait_for(lambda: not _rank_pids(worker.pid), timeout=30)
    killed_at = _latest_step(opened, "killed")
    assert 20 <= killed_at < 300

    rerun = write_job(
        tmp_path / "a2", opened, inputs, config, processes=2, fingerprint="killed", attempt=2
    )
    resumed = _run(rerun)
    assert resumed["status"] == "succeeded", (rerun / "log").read_text()[-3000:]
    # Both ranks resumed from rank 0's last checkpoint, not from scratch.
    assert (rerun / "log").read_text().count(f'"checkpoint": {killed_at}') == 2
    assert resumed["outputs"] == reference["outputs"]


def test_a_stop_request_reaches_every_rank_and_the_rerun_finishes(
    tmp_path: Path, store: tuple[ArtifactStore, dict[str, str]]
) -> None:
    opened, inputs = store
    config = long_tiny(steps=150)
    job = write_job(tmp_path / "a1", opened, inputs, config, processes=2, fingerprint="stopped")
    worker = start_worker(job)
    wait_for(lambda: _latest_step(opened, "stopped") >= 10, timeout=120)
    os.kill(worker.pid, signal.SIGTERM)
    worker.wait(timeout=120)
    stopped = json.loads((job / "result.json").read_text())
    assert stopped["status"] == "failed" and "stopped on request" in stopped["error"]
    # Both ranks saw the request and stopped after the same step, which rank 0 checkpointed.
    reasons = {(job / "ranks" / str(r) / "error.txt").read_text() for r in (0, 1)}
    (reason,) = reasons
    assert reason.startswith("PhaseStopped") and "vfn_" in reason
    at = _latest_step(opened, "stopped")
    assert 10 <= at < 300
    stopped = re.search(r"step (\d+)", reason)
    assert stopped is not None, reason
    stopped_step = int(stopped[1])
    assert at in (stopped_step, 150 + stopped_step)
    rerun = write_job(
        tmp_path / "a2", opened, inputs, config, processes=2, fingerprint="stopped", attempt=2
    )
    assert _run(rerun)["status"] == "succeeded"
    assert (rerun / "log").read_text().count(f'"checkpoint": {at}') == 2


def test_the_scheduler_runs_one_rank_per_core_and_mirrors_rank_0s_checkpoints(
    tmp_path: Path,
) -> None:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    add_inputs(store, tmp_path / "inputs")
    backend = InProcessBackend(work_dir=tmp_path / "work", cpu_cores=2)
    result = voltx.run("5.1", backend=backend, store=url)
    assert result.ok, result.phases["5.1"].reason
    (job,) = (tmp_path / "work" / "jobs").iterdir()
    assert JobDocument.read(job / "job.json").processes == 2
    assert (job / "ranks.json").is_file()
    # The store is not on this machine's disk: the worker mirrored what rank 0 committed.
    mirrored = [p for p in store.list_files("checkpoints/5.1") if "/step-" in p]
    assert mirrored


def test_no_rank_outlives_a_worker_killed_outright(
    tmp_path: Path, store: tuple[ArtifactStore, dict[str, str]]
) -> None:
    opened, inputs = store
    job = write_job(
        tmp_path / "a1", opened, inputs, long_tiny(steps=150), processes=2, fingerprint="orphans"
    )
    worker = start_worker(job)
    wait_for(lambda: len(_rank_pids(worker.pid)) == 2, timeout=120)
    agent_and_ranks = [*_children(worker.pid), *_rank_pids(worker.pid)]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    def all_gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in agent_and_ranks)

    wait_for(all_gone, timeout=90)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
