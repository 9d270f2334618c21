"""The `benchmark_report` folder: report.json, report.md, report.html and the PNGs.

report.json is the machine-readable document (docs/formats.md, benchmark_report); the
Markdown and HTML say the same in tables, with the figures beside them:

- ``pass_at_k.png``: pass@k per benchmark (and per MultiPL-E language), solid bars on every
  kept problem, hatched bars without the contaminated ones;
- ``rar_iterations.png``: how many RAR iterations the problems took, solved and unsolved;
- ``reliability.png``: only with a `gamma_calibration` input: the calibrated gamma of every
  sample against the fraction of samples that passed, in ten bins.

Contamination is said loudly: a banner at the top of both documents whenever a benchmark
problem was found in the model's training data, and both scores in every table.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from voltx_phases.hard_core.gamma_curve import GammaCurve
from voltx_phases.scale.contamination import Contamination
from voltx_phases.scale.ground_truth import GroundTruth
from voltx_phases.scale.pass_at_k import SampleCounts, pass_at_ks
from voltx_phases.scale.report_config import BenchmarkReportConfig

REPORT_FORMAT = "voltx-benchmark-report"
REPORT_VERSION = 1
_BINS = 10
# Durations live in lineage, never in an artifact's content (the report depends only on its
# inputs and config), so the per-hour figure is computed when the report is shown.
_PER_HOUR = "pass@1 per GPU-hour: `voltx report` prints it from the store's lineage."


@attrs.frozen
class ProblemOutcome:
    """One problem's samples: how many passed, and what the model did on the way."""

    problem_id: str
    n: int
    c: int
    rar_iterations: int
    passed: tuple[bool, ...]  # per sample
    confidences: tuple[float, ...]  # per sample: the raw confidence (`voltx.generation`)


def write_report(
    folder: Path,
    *,
    config: BenchmarkReportConfig,
    outcomes: Mapping[str, Sequence[ProblemOutcome]],
    sources: Mapping[str, str],
    truths: Mapping[str, GroundTruth],
    contamination: Contamination,
    gamma_curve: Path | None = None,
) -> dict[str, Any]:
    """Write every file of the report into `folder`; returns report.json's content."""
    benchmarks = []
    for label, rows in outcomes.items():
        dirty = contamination.problems_in(label)
        counts = [SampleCounts(o.problem_id, o.n, o.c) for o in rows]
        clean = [c for c in counts if c.problem_id not in dirty]
        solved = [o.rar_iterations for o in rows if o.c > 0]
        unsolved = [o.rar_iterations for o in rows if o.c == 0]
        benchmarks.append(
            {
                "name": label,
                "source": sources.get(label, "unknown"),
                "problems": len(rows),
                "ground_truth": truths[label].to_json(),
                "pass_at_k": pass_at_ks(counts, config.ks),
                "contaminated": sorted(p for p in dirty if p in {c.problem_id for c in counts}),
                "pass_at_k_uncontaminated": pass_at_ks(clean, config.ks),
                "uncontaminated_problems": len(clean),
                "rar_iterations_solved": _mean(solved),
                "rar_iterations_unsolved": _mean(unsolved),
                "per_problem": [
                    {"id": o.problem_id, "n": o.n, "c": o.c, "rar_iterations": o.rar_iterations}
                    for o in rows
                ],
            }
        )
    all_counts = [SampleCounts(o.problem_id, o.n, o.c) for rows in outcomes.values() for o in rows]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "samples_per_problem": config.samples_per_problem,
        "ks": list(config.ks),
        "benchmarks": benchmarks,
        "contamination": contamination.to_json(),
        "pass_at_1_all": pass_at_ks(all_counts, (1,)).get("pass@1"),
        "calibration": None,
        "figures": ["pass_at_k.png", "rar_iterations.png"],
    }
    _plot_pass_at_k(folder / "pass_at_k.png", benchmarks, config.ks)
    _plot_rar(folder / "rar_iterations.png", outcomes)
    if gamma_curve is not None:
        curve = GammaCurve.load(gamma_curve)
        report["calibration"] = _plot_reliability(folder / "reliability.png", curve, outcomes)
        report["figures"].append("reliability.png")
    (folder / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "report.html").write_text(render_html(report), encoding="utf-8")
    return report


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _warnings(report: Mapping[str, Any]) -> list[str]:
    """The loud lines: contamination found, or the check unable to run."""
    found = report["contamination"]
    if not found["lineage_read"]:
        return ["CONTAMINATION UNKNOWN: the store's lineage could not be read."]
    return [
        f"CONTAMINATED: {len(ids)} {b['name']} problem(s) were in the model's training data "
        f"({', '.join(sorted({s for sets in ids.values() for s in sets}))}); "
        "see the uncontaminated columns."
        for b in report["benchmarks"]
        if (ids := found["contaminated"].get(b["name"]))
    ]


def _table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    ks = [f"pass@{k}" for k in report["ks"]]
    header = ["benchmark", "source", "problems", "broken", *ks, "contaminated"]
    header += [f"{k} clean" for k in ks] + ["RAR it. solved", "RAR it. unsolved"]
    rows = []
    for b in report["benchmarks"]:
        rows.append(
            [
                b["name"],
                b["source"],
                str(b["problems"]),
                str(len(b["ground_truth"]["broken"])),
                *(_cell(b["pass_at_k"].get(k)) for k in ks),
                str(len(b["contaminated"])),
                *(_cell(b["pass_at_k_uncontaminated"].get(k)) for k in ks),
                _cell(b["rar_iterations_solved"]),
                _cell(b["rar_iterations_unsolved"]),
            ]
        )
    return header, rows


def _broken(report: Mapping[str, Any]) -> list[str]:
    return [
        f"{b['name']} {item['problem_id']}: {item['reason']}"
        for b in report["benchmarks"]
        for item in b["ground_truth"]["broken"]
    ]


def render_markdown(report: Mapping[str, Any]) -> str:
    header, rows = _table(report)
    lines = ["# Benchmark report", ""]
    lines += [f"> **{w}**" for w in _warnings(report)] + [""]
    lines.append(f"{report['samples_per_problem']} samples per problem; unbiased pass@k ")
    lines.append(
        "(k above the sample count is left out, `-`). `clean`: without contaminated problems."
    )
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"pass@1 over all problems: {_cell(report['pass_at_1_all'])}. {_PER_HOUR}"]
    broken = _broken(report)
    lines += ["", "## Ground truth", ""]
    lines += [f"- {b}" for b in broken] or ["Every reference solution passed its tests."]
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in report["figures"]]
    return "\n".join(lines) + "\n"


def render_html(report: Mapping[str, Any]) -> str:
    header, rows = _table(report)
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Benchmark report</title>"]
    parts.append("<style>td,th{border:1px solid #999;padding:2px 6px}table{border-collapse:")
    parts.append("collapse}.warn{background:#fdd;border:2px solid #c00;padding:6px}</style>")
    parts.append("</head><body><h1>Benchmark report</h1>")
    parts += [f"<p class='warn'><b>{esc(w)}</b></p>" for w in _warnings(report)]
    parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    parts.append(f"<p>pass@1 over all problems: {esc(_cell(report['pass_at_1_all']))}. ")
    parts.append(f"{esc(_PER_HOUR)}</p><h2>Ground truth</h2><ul>")
    parts += [f"<li>{esc(b)}</li>" for b in _broken(report)] or ["<li>all passed</li>"]
    parts.append("</ul><h2>Figures</h2>")
    parts += [f"<p><img src='{esc(f)}' alt='{esc(f)}'></p>" for f in report["figures"]]
    return "".join(parts) + "</body></html>\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    # No software version or date in the file, so equal results give equal bytes.
    figure.savefig(path, metadata={"Software": None})
    _pyplot().close(figure)


def _plot_pass_at_k(path: Path, benchmarks: list[dict[str, Any]], ks: Sequence[int]) -> None:
    """Two bars per benchmark and k (all kept problems; hatched: uncontaminated only), each
    labelled with its value, so a zero reads as 0.00 and a missing one as n/a."""
    plt = _pyplot()
    shown = [k for k in ks if any(f"pass@{k}" in b["pass_at_k"] for b in benchmarks)]
    figure, axis = plt.subplots(figsize=(max(7.5, 1.8 * len(benchmarks) + 2.5), 4.5), dpi=100)
    positions = np.arange(len(benchmarks))
    width = 0.8 / max(2 * len(shown), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, k in enumerate(shown):
        key = f"pass@{k}"
        for half, (field, hatch, label) in enumerate(
            (("pass_at_k", "", key), ("pass_at_k_uncontaminated", "//", f"{key} uncontaminated"))
        ):
            offset = (2 * index + half - (2 * len(shown) - 1) / 2) * width
            values = [b[field].get(key) for b in benchmarks]
            heights = [np.nan if v is None else v for v in values]
            axis.bar(
                positions + offset,
                heights,
                width,
                color=colors[index % len(colors)],
                hatch=hatch,
                alpha=0.55 if hatch else 1.0,
                label=label,
            )
            for x, value in zip(positions + offset, values, strict=True):
                text = "n/a" if value is None else f"{value:.2f}"
                height = 0.0 if value is None else value
                axis.text(x, height + 0.01, text, ha="center", va="bottom", fontsize=7, rotation=90)
    axis.set_xticks(positions, [b["name"] for b in benchmarks], rotation=20, ha="right")
    axis.set_ylim(0, 1.15)
    axis.set_ylabel("pass@k")
    axis.set_title("pass@k per benchmark (hatched: uncontaminated problems only)")
    if shown:
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(figure, path)


def _plot_rar(path: Path, outcomes: Mapping[str, Sequence[ProblemOutcome]]) -> None:
    plt = _pyplot()
    rows = [o for group in outcomes.values() for o in group]
    solved = [o.rar_iterations for o in rows if o.c > 0]
    unsolved = [o.rar_iterations for o in rows if o.c == 0]
    top = max([o.rar_iterations for o in rows], default=1)
    bins = np.arange(0, top + 2) - 0.5
    figure, axis = plt.subplots(figsize=(7, 4), dpi=100)
    axis.hist([solved, unsolved], bins=bins, stacked=True, label=["solved", "unsolved"])
    axis.set_xlabel("RAR iterations until every slot converged (or the budget)")
    axis.set_ylabel("problems")
    axis.set_title("RAR iterations per problem")
    axis.legend()
    _save(figure, path)


def _plot_reliability(
    path: Path, curve: GammaCurve, outcomes: Mapping[str, Sequence[ProblemOutcome]]
) -> dict[str, Any]:
    """Calibrated gamma of each sample against its pass, in equal-width bins; the figures."""
    raw = np.array([c for g in outcomes.values() for o in g for c in o.confidences])
    passed = np.array([p for g in outcomes.values() for o in g for p in o.passed], dtype=float)
    gamma = curve.apply(raw) if raw.size else raw
    edges = np.linspace(0, 1, _BINS + 1)
    which = np.clip(np.digitize(gamma, edges) - 1, 0, _BINS - 1)
    bins = []
    for index in range(_BINS):
        inside = which == index
        if inside.any():
            bins.append(
                {
                    "low": float(edges[index]),
                    "high": float(edges[index + 1]),
                    "count": int(inside.sum()),
                    "mean_gamma": float(gamma[inside].mean()),
                    "pass_rate": float(passed[inside].mean()),
                }
            )
    total = max(int(raw.size), 1)
    ece = sum(b["count"] / total * abs(b["mean_gamma"] - b["pass_rate"]) for b in bins)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5), dpi=100)
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    axis.plot(
        [b["mean_gamma"] for b in bins], [b["pass_rate"] for b in bins], "o-", label="samples"
    )
    for b in bins:
        axis.annotate(
            f"n={b['count']}",
            (b["mean_gamma"], b["pass_rate"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, 4),
        )
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel(f"calibrated gamma ({curve.method or 'method?'} on {curve.signal})")
    axis.set_ylabel("fraction of samples passing")
    axis.set_title(f"Reliability of the calibrated gamma (ECE {ece:.3f})")
    axis.legend()
    _save(figure, path)
    return {"method": curve.method, "signal": curve.signal, "ece": ece, "bins": bins}
