"""Phase 4.2, RLVF alignment, on a tiny store the pipeline trained: the report, the learning
signal, the veto's wiring, bad input, stop on request and bit-exact resume after SIGKILL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

from _alignment_store import build_store, write_axioms  # noqa: E402

import voltx  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def rlvf_store(tmp_path_factory: pytest.TempPathFactory, tiny_model_store: str) -> Iterator[str]:
    yield build_store(tmp_path_factory.mktemp("rlvf-store"), tiny_model_store)


@pytest.fixture(scope="session")
def rlvf_run(rlvf_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny 4.2 run on a copy of the store: its result, report and metrics rows."""
    root = tmp_path_factory.mktemp("rlvf-run")
    store = root / "store"
    shutil.copytree(rlvf_store, store)
    threads = torch.get_num_threads()
    result = voltx.run(
        "4.2", backend=InProcessBackend(root / "jobs"), store=str(store), profile="tiny"
    )
    torch.set_num_threads(threads)
    report = ArtifactStore.open(str(store)).get("vfn_rlvf_report", root / "report")
    return {"result": result, "report": report, "store": str(store), "root": root}


def test_report_has_calibration_before_and_after(rlvf_run: dict[str, Any]) -> None:
    result = rlvf_run["result"]
    assert result.ok, result.phases["4.2"].reason
    report: Path = rlvf_run["report"]
    assert {p.name for p in report.iterdir()} >= {
        "metrics.json",
        "metrics.jsonl",
        "reward_curve.png",
        "loss_curve.png",
        "reliability_diagram.png",
    }
    summary = json.loads((report / "metrics.json").read_text())
    for when in ("before", "after"):
        side = summary[when]
        assert side["samples"] == 4 * 2  # 4 held-out problems x 2 samples
        assert 0.0 <= side["ece"] <= 1.0
        assert 0.0 <= side["overconfident_error_rate"] <= 1.0
        assert sum(side["bin_counts"]) == side["samples"]
        assert len(side["bin_accuracy"]) == len(side["bin_confidence"]) == 10
    assert summary["steps"] == 6
    assert summary["mutations"] >= 1  # verified mutations joined the training problems
    weights = ArtifactStore.open(rlvf_run["store"]).get("vfn_rlvf", rlvf_run["root"] / "w")
    assert sorted(p.name for p in weights.iterdir()) == [
        "diffusion_controller.safetensors",
        "scaled_vfn.safetensors",
        "slot_attention.safetensors",
    ]


def test_updates_move_probability_towards_rewarded_samples(rlvf_run: dict[str, Any]) -> None:
    """The learning signal: the REINFORCE steps raise sum A log pi on their own samples, and the
    mean reward after the first step exceeds the first step's (the tiny model passes no test, so
    what it learns is humility: lower certainty on the code it gets wrong)."""
    text = (rlvf_run["report"] / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 6
    gains = [row["objective_gain"] for row in rows]
    assert sum(gains) > 0 and sum(gain > 0 for gain in gains) >= 3, gains
    # Six steps of four samples are too few for a trend between halves; every later step's
    # mean is compared with the untrained policy's first.
    rewards = [row["reward"] for row in rows]
    assert sum(rewards[1:]) / 5 > rewards[0], rewards
    assert all(-5.0 <= reward <= 1.0 for reward in rewards)


def test_the_refined_axioms_veto_programs(rlvf_store: str, tmp_path: Path) -> None:
    from voltx_phases.alignment.policy import Policy
    from voltx_phases.alignment.rlvf_config import RLVF_PROFILES
    from voltx_phases.hard_core.safety_file import load_axioms

    store = ArtifactStore.open(rlvf_store)
    names = ("code_tokenizer", "code_encoder", "code_decoder", "code_attention_bias", "vfn_e2e")
    inputs = {name: store.get(name, tmp_path / name) for name in names}
    policy = Policy.load(inputs, "vfn_e2e", torch.device("cpu"))
    settings = RLVF_PROFILES["tiny"].policy
    codes = ["def f(x):\n    return x + 1\n", "import os\nos.system('rm -rf /')\n"]
    strict = load_axioms(write_axioms(tmp_path / "strict.safetensors", threshold=-1.0))
    lenient = load_axioms(write_axioms(tmp_path / "lenient.safetensors", threshold=1.0))
    assert policy.vetoed(codes, strict, settings, seed=0) == [True, True]
    assert policy.vetoed(codes, lenient, settings, seed=0) == [False, False]


def test_a_gamma_curve_in_another_format_is_refused(rlvf_store: str, tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    store_path = tmp_path / "store"
    shutil.copytree(rlvf_store, store_path)
    bad = tmp_path / "gamma.safetensors"
    save_file(
        {"raw": np.array([0.0, 1.0], np.float32)},
        str(bad),
        metadata={"format": "something-else", "version": "1"},
    )
    store = ArtifactStore.open(str(store_path))
    store.add("gamma_calibration", bad)
    result = voltx.run(
        "4.2", backend=InProcessBackend(tmp_path / "jobs"), store=str(store_path), profile="tiny"
    )
    reason = result.phases["4.2"].reason
    assert "gamma_calibration" in reason and "'voltx-gamma-curve'" in reason
    assert "\n" not in reason


# -- bit-exact resume after SIGKILL ------------------------------------------------------------

RUN_ARGS = (
    "run",
    "4.2",
    "--profile",
    "tiny",
    "--max-attempts",
    "10",
    "--set",
    "4.2.keep_checkpoints=50",
)


def _cli(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _digests(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {name: store.resolve(name).digest for name in ("vfn_rlvf", "vfn_rlvf_report")}


@pytest.mark.integration
def test_sigkill_mid_phase_resumes_byte_identical(rlvf_store: str, tmp_path: Path) -> None:
    baseline, interrupted = tmp_path / "a", tmp_path / "b"
    for project in (baseline, interrupted):
        project.mkdir()
        shutil.copytree(rlvf_store, project / ".voltx")
    reference = _cli(baseline, *RUN_ARGS)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    process = _cli(interrupted, *RUN_ARGS)
    kills = kill_job_at_checkpoints(process, interrupted, "4.2", [2, 4])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 2, f"only killed at {kills}"
    assert _digests(interrupted) == _digests(baseline)


def test_stop_request_checkpoints_and_stops(rlvf_store: str, tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    shutil.copytree(rlvf_store, store_path)
    calls = {"n": 0}

    def stop_at_the_second_step(self: Any) -> bool:
        calls["n"] += 1
        return calls["n"] == 2

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voltx.PhaseContext, "stop_requested", stop_at_the_second_step)
        voltx.run(
            "4.2",
            backend=InProcessBackend(tmp_path / "jobs"),
            store=str(store_path),
            profile="tiny",
            overrides={"4.2.checkpoint_every_steps": 100},
        )
    folders = (store_path / "checkpoints" / "4.2").glob("*/step-*")
    steps = {int(f.name.removeprefix("step-")) for f in folders}
    # No periodic checkpoint before the end: the stop made the one at step 2 (a resumed attempt
    # may then finish and make the last one).
    assert 2 in steps and steps <= {2, 6}, steps
