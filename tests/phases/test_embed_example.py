"""examples/embed/run_with_price_limit.py, run as a user would: refused over the limit, and run
under it to the benchmark report, on a copy of the session's tiny model store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")

from _pinned import add_decoder_copies, add_soft_core_of_2_1
from test_benchmark_report_pipeline import _gamma_file

from _support import REPO, TEST_PLUGINS, subprocess_env
from voltx.ledger import latest_run_id
from voltx.store import ArtifactStore
from voltx_phases.scale.report_config import LANGUAGE_DECODERS

SCRIPT = REPO / "examples" / "embed" / "run_with_price_limit.py"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]


def script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="priced_backend,routed_backends")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_script_refuses_over_its_limit_and_runs_under_it(
    copy_tiny_model_store: Callable[[str], str], tmp_path: Path
) -> None:
    url = copy_tiny_model_store("embed-store")
    store, root = ArtifactStore.open(url), Path(url).parent
    store.add("gamma_calibration", _gamma_file(root / "gamma"))
    add_soft_core_of_2_1(url, root / "pinned", "vfn_500m")
    add_decoder_copies(url, root / "pinned", tuple(sorted(set(LANGUAGE_DECODERS.values()))))
    project = tmp_path / "project"
    project.mkdir()
    # `alt` is local jobs at a price: a dollar a second, so the plan costs more than a cent.
    (project / "voltx.toml").write_text(
        f'[project]\nstore = "{url}"\nprofile = "tiny"\n\n[backends.alt]\ndollars_per_hour = 3600\n'
    )
    before = latest_run_id(store)  # the run that trained the copied store
    refused = script("5.3", "--max-dollars", "0.01", "--backend", "alt", cwd=project)
    assert refused.returncode == 2, refused.stderr
    assert "over the limit of $0.01" in refused.stderr
    planned = next(line for line in refused.stdout.splitlines() if line.startswith("plan: 5.3"))
    assert " run " in planned and " on alt:" in planned
    assert latest_run_id(store) == before  # nothing ran

    ran = script("5.3", "--max-dollars", "1", "--backend", "local", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert any(line.startswith("run: 5.3") and "succeeded" in line for line in lines)
    assert any(line.startswith("artifact: benchmark_report ") for line in lines)
    report = json.loads(next(line for line in lines if line.startswith("report: "))[8:])
    assert "pass_at_1_all" in report and "training_gpu_hours" in report
