"""The three hard-core calibrations (3.1, 3.2, 3.3) read the trained model and the datasets, not
one another: planned as three lanes after 2.1, and run at once on the local backend."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import voltx  # noqa: E402
from voltx.ledger import Ledger  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import memory_store_url  # noqa: E402
from voltx_backends.local import LocalBackend  # noqa: E402

CALIBRATIONS = ["3.1", "3.2", "3.3"]


def test_the_plan_draws_three_parallel_lanes_after_the_model() -> None:
    timeline = voltx.plan(CALIBRATIONS, profile="tiny", store=memory_store_url()).timeline
    assert timeline is not None
    entries = {phase: timeline.entry(phase) for phase in CALIBRATIONS}
    model_ready = max(timeline.entry(phase).end[0] for phase in ("1.2", "2.1"))
    assert len({entry.lane for entry in entries.values()}) == 3
    for entry in entries.values():
        assert entry.start[0] >= model_ready
    for a, b in itertools.combinations(entries.values(), 2):
        assert a.start[0] < b.end[0] and b.start[0] < a.end[0]


@pytest.mark.slow
def test_a_local_run_of_the_three_overlaps_them_in_the_ledger(
    copy_tiny_model_store: Callable[[str], str],
) -> None:
    url = copy_tiny_model_store("lanes-store")
    # Three single-core phases: a machine of three cores runs them together (this one may have
    # fewer; the backend is told three, as a user sharing a machine would).
    backend = LocalBackend(Path(url).parent / "work", cpu_cores=3)
    result = voltx.run(CALIBRATIONS, backend=backend, store=url, profile="tiny")
    result.raise_for_status()
    ran = [phase for phase, outcome in result.phases.items() if outcome.status != "skipped"]
    assert sorted(ran) == CALIBRATIONS  # the model upstream was fresh
    states = Ledger(ArtifactStore.open(url), result.run_id).phase_states()
    spans = {}
    for phase in CALIBRATIONS:
        started, finished = states[phase].started_at, states[phase].finished_at
        assert states[phase].state == "succeeded" and started and finished, phase
        spans[phase] = (started, finished)
    latest_start = max(start for start, _ in spans.values())
    earliest_end = min(end for _, end in spans.values())
    assert latest_start < earliest_end, f"the three did not run at once: {spans}"
