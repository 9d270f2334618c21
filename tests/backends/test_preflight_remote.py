"""Preflight before renting: every problem of a Vast run on an S3 store, reported in one go.

A missing dataset, an S3 prefix that cannot be written, a Vast key the API refuses, a phase whose
inputs, outputs and checkpoints do not fit the disk it would get, a phase no offer matches: one
`voltx preflight` (or `voltx run`) names them all, exits non-zero, and rents nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fake_vast as fakes
import pytest
from fake_vast import FakeVast

import voltx
import voltx.plugins
from voltx import PhaseSpec, Resources
from voltx.cli import main

fake_vast = fakes.fake_vast

ONE_GPU = Resources(gpus=1, gpu_memory_gb=16, cpu_cores=4, ram_gb=16, disk_gb=40)
PHASES = (
    PhaseSpec(
        id="pf.prepare",
        name="prepare",
        entry="never:runs",
        requires=("dataset",),
        produces=("prepared",),
        resources=ONE_GPU,
        output_gb=1.0,
    ),
    # 30 GB of weights and 3 checkpoints of them, after a 1 GB input: 121 GB on a 40 GB disk.
    PhaseSpec(
        id="pf.big",
        name="big model",
        entry="never:runs",
        requires=("prepared",),
        produces=("big_model",),
        resources=ONE_GPU,
        output_gb=30.0,
    ),
    # Eight GPUs in one machine: the fake has no such offer.
    PhaseSpec(
        id="pf.wide",
        name="eight GPUs",
        entry="never:runs",
        requires=("prepared",),
        produces=("wide_model",),
        resources=Resources(gpus=8, gpu_memory_gb=80, cpu_cores=32, ram_gb=256, disk_gb=200),
        output_gb=1.0,
    ),
)


class _Phases:
    @voltx.hookimpl
    def register_phases(self, register: Any) -> None:
        for spec in PHASES:
            register(spec)


@pytest.fixture
def project(tmp_path: Path, fake_vast: FakeVast, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """These phases and the real backends; a project on the fake Vast and a bucket that is not."""
    from voltx_backends import plugin as backends_plugin

    fresh = voltx.plugins.PluginHost()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    fresh.add(_Phases(), "preflight-phases")
    fresh.add(backends_plugin, "voltx-backends")
    monkeypatch.setattr(voltx.plugins, "_host", fresh)
    settings = {"request_spacing_s": 0.0, "retry_backoff_s": 0.01, "request_attempts": 2}
    lines = [
        "[project]",
        'backend = "vast"',
        'profile = "full"',
        'store = "s3://no-such-bucket/voltx"',
        "",
        "[inputs]",
        f'dataset = "{tmp_path / "datasets" / "problems.jsonl"}"',
        "",
        "[backends.vast]",
        *(f"{key} = {json.dumps(value)}" for key, value in settings.items()),
    ]
    (tmp_path / "voltx.toml").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "voltx.toml"


def _problems(out: str) -> list[str]:
    return [line.removeprefix("problem: ") for line in out.splitlines() if line.startswith("pro")]


def _common(problems: list[str]) -> None:
    text = "\n".join(problems)
    assert "inputs.dataset: no such file or folder" in text and "problems.jsonl" in text
    assert any(p.startswith("store s3://no-such-bucket/voltx is not writable") for p in problems), (
        text
    )
    (disk,) = [p for p in problems if "GB of disk" in p]
    assert "pf.big" in disk and "121 GB" in disk and "gets 40 GB" in disk, disk


def test_with_a_bad_key_every_problem_in_one_preflight(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("VAST_API_KEY", "not-the-key-0000")
    code = main(["preflight", "all"])
    out = capsys.readouterr().out
    assert code == 1, out
    problems = _problems(out)
    _common(problems)
    (key,) = [p for p in problems if p.startswith("Vast.ai")]
    assert "API key" in key and "401" in key, key
    assert "not-the-key-0000" not in out
    assert f"preflight: {len(problems)} problem(s)" in out and len(problems) == 4
    assert fake_vast.created() == []


def test_with_a_good_key_no_offer_for_a_phase_in_the_same_report(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["preflight", "all"])
    out = capsys.readouterr().out
    assert code == 1, out
    problems = _problems(out)
    _common(problems)
    (offers,) = [p for p in problems if "no Vast.ai offer" in p]
    assert offers.startswith("phase pf.wide:") and "num_gpus eq 8" in offers
    assert len(problems) == 4
    assert fake_vast.created() == []


def test_run_refuses_before_renting_anything(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "all"])
    captured = capsys.readouterr()
    assert code != 0
    error = captured.err
    assert "preflight found 4 problem(s)" in error, error
    for part in ("inputs.dataset", "no-such-bucket/voltx is not writable", "disk"):
        assert part in error
    assert "no Vast.ai offer" in error
    assert fake_vast.created() == []
    assert not [r for r in fake_vast.requests if r.method == "PUT" and "/asks/" in r.path]
