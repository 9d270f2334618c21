"""Whole runs on the ray backend: a diamond graph on a Ray head bound to 127.0.0.1, with moto S3.

The phases are the scheduler bench's sleep graph (bench/_sleep_plugin.py); the workers run as
Ray actors' subprocesses on the (one) node, and reach the store themselves with the AWS settings
the backend sends along.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import ray_fixtures
from ray_fixtures import RayCluster

import voltx
from voltx.ledger import Ledger
from voltx.store import ArtifactStore
from voltx_backends.ray import RayBackend, RaySettings

if TYPE_CHECKING:
    from conftest import S3Server  # tests/backends/conftest.py, the `s3` fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ray_cluster = ray_fixtures.ray_cluster
BENCH = Path(__file__).resolve().parents[2] / "bench"
# What the workers need from this process besides the store's settings (sent without asking).
FORWARD_ENV = ("PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_LOAD_PLUGINS", "VOLTX_HOME", "VOLTX_CACHE_DIR")


@pytest.fixture
def sleep_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/_sleep_plugin.py's graph, two wide, for this process and the workers."""
    monkeypatch.setenv("VOLTX_BENCH_WIDTH", "2")
    monkeypatch.setenv("VOLTX_PLUGINS", "_sleep_plugin")
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "backends")
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("PYTHONPATH", str(BENCH))


def _at(stamp: str | None) -> float:
    assert stamp is not None
    return datetime.fromisoformat(stamp).timestamp()


def test_diamond_graph_runs_on_ray_with_both_lanes_at_once(
    ray_cluster: RayCluster, s3: S3Server, sleep_plugin: None
) -> None:
    backend = RayBackend(settings=RaySettings(**ray_cluster.settings(forward_env=FORWARD_ENV)))
    store_url = s3.url("diamond")
    phases = ("a", "b1", "b2", "c", "d1", "d2", "e")
    overrides = {f"bench.{name}.seconds": 1.0 for name in phases}
    result = voltx.run("bench.e", backend=backend, store=store_url, overrides=overrides)
    result.raise_for_status()
    assert {pid: p.status for pid, p in result.phases.items()} == {
        f"bench.{name}": "succeeded" for name in phases
    }
    assert {p.backend for p in result.phases.values()} == {"ray"}
    # The two lanes of each fan ran side by side on the cluster, not one after the other.
    states = Ledger(ArtifactStore.open(store_url), result.run_id).phase_states()
    for left, right in (("b1", "b2"), ("d1", "d2")):
        one, two = states[f"bench.{left}"], states[f"bench.{right}"]
        assert _at(one.started_at) < _at(two.finished_at)
        assert _at(two.started_at) < _at(one.finished_at)
    store = ArtifactStore.open(store_url)
    assert store.resolve("bench_e").lineage["phase"] == "bench.e"
