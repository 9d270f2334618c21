"""``voltx report``: the latest benchmark report (phase 5.3's `benchmark_report`) from the store.

voltx report                  # print report.md
voltx report --open           # write the report folder out and open report.html in a browser
voltx report --json           # print report.json
voltx report --digest 3f2a9c  # an earlier report

Torch-free: the report is files in the store, read as any artifact is (every byte checked).
Durations live in lineage, never in an artifact's content, so the one figure that needs them,
pass@1 per GPU-hour, is computed here: the hours of every phase run upstream of the report
(each run once, from its lineage's `started_at` and `finished_at`), 5.3's own excluded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import webbrowser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.errors import MissingArtifactError, SourceFileError
from voltx.store import ArtifactStore
from voltx.store.manifest import Artifact

REPORT_ARTIFACT = "benchmark_report"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("report", help="print or open the latest benchmark report (5.3)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--open", action="store_true", help="open report.html in a browser")
    shown.add_argument("--json", action="store_true", help="print report.json")
    parser.add_argument("--digest", help="this version of the report instead of the latest")
    parser.set_defaults(handler=cmd_report)


def report_folder(
    store: str | None, config: str | None, digest: str | None
) -> tuple[Path, ArtifactStore, Artifact]:
    """The report's files written out under ``$VOLTX_HOME/reports/<digest>`` (kept, so a browser
    can still read them after the command returns); that folder, the store and the artifact."""
    from voltx.session import open_session

    session = open_session(store=store, config=config)
    if digest is None and session.store.ref(REPORT_ARTIFACT) is None:
        producer = session.graph.producer.get(REPORT_ARTIFACT)
        raise MissingArtifactError(REPORT_ARTIFACT, session.store.url, producer, "voltx report")
    artifact = session.store.resolve(digest or REPORT_ARTIFACT)
    home = Path(os.environ.get("VOLTX_HOME", Path.home() / ".voltx"))
    folder = home / "reports" / artifact.digest
    if not (folder / "report.md").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        session.store.get(artifact.digest, folder, overwrite=True)
    return folder, session.store, artifact


@attrs.frozen
class UpstreamHours:
    """The wall-clock hours of the phase runs an artifact descends from, and of those the
    GPU-hours (each run's hours times the GPUs it was given; a run on CPU counts none)."""

    hours: float
    gpu_hours: float


def upstream_hours(store: ArtifactStore, artifact: Artifact) -> UpstreamHours | None:
    """The hours of the phase runs `artifact` descends from, each run (fingerprint) once; None
    when no ancestor records a phase run (added files only)."""
    runs: dict[str, tuple[float, int]] = {}
    queue = list(_inputs(artifact.lineage).values())
    seen: set[str] = set()
    while queue:
        digest = queue.pop()
        if digest in seen:
            continue
        seen.add(digest)
        lineage = store.load_manifest(digest).lineage
        queue.extend(_inputs(lineage).values())
        key = lineage.get("fingerprint")
        if lineage.get("phase") and isinstance(key, str) and key not in runs:
            gpus = lineage.get("gpus")
            runs[key] = (_span_hours(lineage), gpus if isinstance(gpus, int) else 0)
    if not runs:
        return None
    return UpstreamHours(
        hours=sum(hours for hours, _ in runs.values()),
        gpu_hours=sum(hours * gpus for hours, gpus in runs.values()),
    )


def _inputs(lineage: Mapping[str, Any]) -> dict[str, str]:
    inputs = lineage.get("inputs")
    return {str(k): str(v) for k, v in inputs.items()} if isinstance(inputs, Mapping) else {}


def _span_hours(lineage: Mapping[str, Any]) -> float:
    try:
        begun = dt.datetime.fromisoformat(str(lineage["started_at"]))
        ended = dt.datetime.fromisoformat(str(lineage["finished_at"]))
    except (KeyError, ValueError):
        return 0.0
    return max((ended - begun).total_seconds(), 0.0) / 3600


def efficiency(store: ArtifactStore, artifact: Artifact, folder: Path) -> dict[str, float | None]:
    """pass@1 (from report.json), the upstream hours and GPU-hours, and pass@1 per each."""
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        pass_at_1 = data.get("pass_at_1_all") if isinstance(data, dict) else None
    except (OSError, ValueError):
        pass_at_1 = None
    upstream = upstream_hours(store, artifact)
    hours = upstream.hours if upstream else None
    gpu_hours = upstream.gpu_hours if upstream else None
    score = float(pass_at_1) if isinstance(pass_at_1, float | int) else None
    return {
        "training_hours": hours,
        "training_gpu_hours": gpu_hours,
        "pass_at_1_per_hour": score / hours if score is not None and hours else None,
        "pass_at_1_per_gpu_hour": score / gpu_hours if score is not None and gpu_hours else None,
    }


def cmd_report(args: argparse.Namespace) -> int:
    folder, store, artifact = report_folder(args.store, args.config, args.digest)
    name = "report.json" if args.json else "report.html" if args.open else "report.md"
    path = folder / name
    if not path.is_file():
        raise SourceFileError(str(path), "the report artifact has no such file")
    if args.open:
        print(path)
        webbrowser.open(path.as_uri())
        return 0
    figures = efficiency(store, artifact, folder)
    if args.json:
        data = json.loads(path.read_text(encoding="utf-8"))
        json.dump({**data, **figures} if isinstance(data, dict) else data, sys.stdout, indent=1)
        print()
        return 0
    sys.stdout.write(path.read_text(encoding="utf-8"))
    hours, gpu_hours = figures["training_hours"], figures["training_gpu_hours"]
    if hours is None:
        print("\nHours of the phase runs upstream (from lineage): unknown (no phase runs in it)")
        return 0
    print(
        f"\nHours of the phase runs upstream (from lineage): {hours:.4f}, GPU-hours {gpu_hours:.4f}"
    )
    if figures["pass_at_1_per_gpu_hour"] is not None:
        print(f"pass@1 per GPU-hour: {figures['pass_at_1_per_gpu_hour']:.4f}")
    elif figures["pass_at_1_per_hour"] is not None:
        print(f"pass@1 per hour (the runs had no GPU): {figures['pass_at_1_per_hour']:.4f}")
    return 0
