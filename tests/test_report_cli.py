"""`voltx report`: prints, or opens, the latest `benchmark_report` of the store (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voltx.cli import main
from voltx.store import ArtifactStore


def _report(folder: Path, title: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "report.md").write_text(f"# {title}\n")
    (folder / "report.html").write_text(f"<h1>{title}</h1>\n")
    (folder / "report.json").write_text(json.dumps({"title": title}) + "\n")
    return folder


def test_prints_the_latest_report_and_an_earlier_one_by_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ArtifactStore.open(str(tmp_path / "store"))
    first = store.add("benchmark_report", _report(tmp_path / "one", "first"))
    store.add("benchmark_report", _report(tmp_path / "two", "second"))
    assert main(["--store", store.url, "report"]) == 0
    # Added by hand, no phase run upstream: no hours to divide by.
    out = capsys.readouterr().out
    assert out.startswith("# second\n") and "upstream (from lineage): unknown" in out
    assert main(["--store", store.url, "report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "title": "second",
        "training_hours": None,
        "training_gpu_hours": None,
        "pass_at_1_per_hour": None,
        "pass_at_1_per_gpu_hour": None,
    }
    assert main(["--store", store.url, "report", "--digest", first.digest[:12]]) == 0
    assert capsys.readouterr().out.startswith("# first\n")


def test_open_writes_the_folder_out_and_opens_the_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ArtifactStore.open(str(tmp_path / "store"))
    store.add("benchmark_report", _report(tmp_path / "one", "only"))
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert main(["--store", store.url, "report", "--open"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "report.html" and path.read_text() == "<h1>only</h1>\n"
    assert opened == [path.as_uri()]


def test_no_report_names_the_phase_that_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", str(tmp_path / "empty"), "report"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "'benchmark_report'" in lines[0] and "phase 5.3 makes it" in lines[0]
