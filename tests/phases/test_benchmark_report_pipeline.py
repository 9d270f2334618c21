"""Phase 5.3 through the pipeline: the report a tiny store gets, and HumanEval's ground truth.

Slow: the tiny model (1.1, 1.2, 2.0, 2.1) and 5.3 are trained and run once for the file's
tests (one of which kills 5.3 mid-way and resumes it); another runs HumanEval's 164 reference
solutions in the sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _pinned import add_decoder_copies, add_soft_core_of_2_1  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import voltx  # noqa: E402
from _support import REPO, wait_for  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend  # noqa: E402
from voltx_phases.datasets.schema import read_problems  # noqa: E402
from voltx_phases.execution.limits import SandboxLimits  # noqa: E402
from voltx_phases.scale.ground_truth import check_references  # noqa: E402
from voltx_phases.scale.report_config import LANGUAGE_DECODERS  # noqa: E402

HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]


def _gamma_file(folder: Path) -> Path:
    """A `gamma_calibration` as phase 3.2 writes it: a tabulated isotonic-like curve."""
    folder.mkdir(parents=True)
    raw = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    calibrated = np.clip(raw * 0.6, 0, 1).astype(np.float32)
    metadata = {
        "format": "voltx-gamma-curve",
        "version": "1",
        "method": "isotonic",
        "signal": "confidence",
    }
    save_file(
        {"raw": raw, "calibrated": calibrated},
        str(folder / "gamma_calibration.safetensors"),
        metadata=metadata,
    )
    return folder


@pytest.fixture(scope="module")
def report_store(copy_tiny_model_store: Callable[[str], str]) -> Iterator[str]:
    """The tiny 5.3, with a gamma curve in the store, run once on a copy of the tiny model
    store."""
    threads = torch.get_num_threads()
    url = copy_tiny_model_store("report-store")
    store, root = ArtifactStore.open(url), Path(url).parent
    store.add("gamma_calibration", _gamma_file(root / "gamma"))
    add_soft_core_of_2_1(url, root / "pinned", "vfn_500m")
    add_decoder_copies(url, root / "pinned", tuple(sorted(set(LANGUAGE_DECODERS.values()))))
    result = voltx.run(
        "5.3", backend=InProcessBackend(root / "jobs"), store=store.url, profile="tiny"
    )
    torch.set_num_threads(threads)  # the tiny phases set one thread, process-wide
    result.raise_for_status()
    yield store.url


def test_the_tiny_report_has_every_file_and_flags_combined_benchmarks(
    report_store: str, tmp_path: Path
) -> None:
    folder = ArtifactStore.open(report_store).get("benchmark_report", tmp_path / "report")
    names = {p.name for p in folder.iterdir()}
    assert {
        "report.md",
        "report.html",
        "report.json",
        "pass_at_k.png",
        "rar_iterations.png",
        "reliability.png",
    } <= names
    for png in ("pass_at_k.png", "rar_iterations.png", "reliability.png"):
        assert (folder / png).read_bytes().startswith(PNG_MAGIC)
    report = json.loads((folder / "report.json").read_text())
    by_name = {b["name"]: b for b in report["benchmarks"]}
    assert {"HumanEval", "MBPP", "APPS introductory"} <= set(by_name)
    for bench in by_name.values():
        assert 1 <= bench["problems"] <= 4  # the tiny profile's cap
        assert bench["ground_truth"]["broken"] == []  # generated problems are validated
        assert set(bench["pass_at_k"]) == {"pass@1"}  # 4 samples: pass@10 and @100 left out
        assert all(row["n"] == 4 and 0 <= row["c"] <= 4 for row in bench["per_problem"])
    # combine_benchmarks is on by default: every HumanEval problem was trained on, loudly.
    humaneval = by_name["HumanEval"]
    assert len(humaneval["contaminated"]) == humaneval["problems"]
    assert humaneval["pass_at_k_uncontaminated"] == {}
    assert report["contamination"]["lineage_read"] is True
    banner = f"CONTAMINATED: {humaneval['problems']} HumanEval problem(s)"
    assert banner in (folder / "report.md").read_text()
    assert "CONTAMINATED" in (folder / "report.html").read_text()
    assert report["calibration"]["method"] == "isotonic"
    samples = sum(row["n"] for b in by_name.values() for row in b["per_problem"])
    assert sum(b["count"] for b in report["calibration"]["bins"]) == samples


def test_voltx_report_prints_the_latest_report(
    report_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    assert main(["--store", report_store, "report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Benchmark report")
    # The tiny pipeline ran on CPU: hours, but no GPU-hours to divide by.
    assert "pass@1 per hour (the runs had no GPU): " in out.split("(from lineage)")[-1]
    assert main(["--store", report_store, "report", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["training_hours"] > 0 and figures["training_gpu_hours"] == 0
    assert figures["pass_at_1_per_gpu_hour"] is None
    assert figures["pass_at_1_per_hour"] == pytest.approx(
        figures["pass_at_1_all"] / figures["training_hours"]
    )


@pytest.mark.skipif(not HUMANEVAL.is_file(), reason=f"{HUMANEVAL} is absent")
def test_humaneval_references_all_pass_the_ground_truth_check(tmp_path: Path) -> None:
    store = ArtifactStore.open(str(tmp_path / "store"))
    store.add("raw_humaneval", HUMANEVAL)
    result = voltx.run(
        "0.2", backend=InProcessBackend(tmp_path / "jobs"), store=store.url, profile="tiny"
    )
    result.raise_for_status()
    folder = store.get("humaneval", tmp_path / "humaneval")
    problems = list(read_problems(folder / "humaneval.jsonl"))
    assert len(problems) == 164
    truth = check_references(problems, SandboxLimits())
    assert truth.broken == ()
    assert len(truth.kept) == 164


def test_a_sigkill_mid_evaluation_resumes_to_the_same_report(
    report_store: str, tmp_path: Path
) -> None:
    """Kill the worker after its first checkpoint; the rerun resumes and writes the report the
    uninterrupted run wrote, byte for byte."""
    source = ArtifactStore.open(report_store)
    expected = source.resolve("benchmark_report")
    fingerprint = str(expected.lineage["fingerprint"])
    project = tmp_path / "project"
    project.mkdir()
    local = Path(report_store.removeprefix("file://"))
    shutil.copytree(local, project / ".voltx")
    # Forget that 5.3 ran (and any checkpoint it left), so its fingerprint runs again here.
    (project / ".voltx" / "refs" / "benchmark_report.json").unlink()
    (project / ".voltx" / "records" / "fingerprints" / f"{fingerprint}.json").unlink()
    checkpoints = project / ".voltx" / "checkpoints" / "5.3"
    shutil.rmtree(checkpoints, ignore_errors=True)
    jobs = project / ".voltx" / "work" / "jobs"
    command = [sys.executable, "-m", "voltx", "run", "5.3", "--profile", "tiny"]
    process = subprocess.Popen(command, cwd=project, text=True, stderr=subprocess.PIPE)
    try:
        wait_for(
            lambda: (
                (list(checkpoints.glob("*/step-*")) and list(jobs.glob("*/pid")))
                or process.poll() is not None
            ),
            300,
        )
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, "5.3 finished before its first checkpoint"
    pid = int(sorted(jobs.glob("*/pid"))[-1].read_text())
    os.killpg(pid, signal.SIGKILL)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "job lost; resubmitting" in err
    logs = [p for p in jobs.rglob("*") if p.is_file()]
    assert any("resuming from a checkpoint" in p.read_text(errors="replace") for p in logs)
    store = ArtifactStore.open(str(project / ".voltx"))
    assert store.resolve("benchmark_report").digest == expected.digest
