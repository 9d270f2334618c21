"""Report folders of phases 4.2 and 4.3: `metrics.json`, the metrics rows, and PNG plots
(`docs/formats.md`, `vfn_rlvf_report`, `vfn_sleep_report`).

Everything written here is computed from the run's logged values, never from wall-clock times,
so a run resumed after a kill writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from voltx_phases.hard_core.calibration import (
    ORIGINAL_ECE_BINS,
    calibration_bins,
    expected_calibration_error,
)


@attrs.frozen
class CalibrationSummary:
    """How well the calibrated certainty gamma predicts that a sample passes all its tests."""

    samples: int
    pass_rate: float
    mean_gamma: float
    ece: float  # 10 equal-width bins, as `hard_core.calibration`
    # Wrong (not every test passes) with gamma at or above the confident threshold, over all
    # samples: the plan's "overconfident error rate".
    overconfident_error_rate: float
    bin_counts: tuple[int, ...]
    bin_confidence: tuple[float, ...]  # mean gamma per bin (0 where empty)
    bin_accuracy: tuple[float, ...]  # pass rate per bin (0 where empty)

    @classmethod
    def of(
        cls, gammas: np.ndarray, correct: np.ndarray, confident_gamma: float
    ) -> CalibrationSummary:
        gammas = np.asarray(gammas, dtype=np.float64)
        correct = np.asarray(correct, dtype=bool)
        index = calibration_bins(gammas, ORIGINAL_ECE_BINS)
        counts = np.bincount(index, minlength=ORIGINAL_ECE_BINS)
        sums = np.bincount(index, weights=np.clip(gammas, 0, 1), minlength=ORIGINAL_ECE_BINS)
        hits = np.bincount(index, weights=correct.astype(float), minlength=ORIGINAL_ECE_BINS)
        safe = np.maximum(counts, 1)
        total = max(len(gammas), 1)
        return cls(
            samples=len(gammas),
            pass_rate=float(correct.sum() / total),
            mean_gamma=float(gammas.mean()) if len(gammas) else 0.0,
            ece=expected_calibration_error(gammas, correct),
            overconfident_error_rate=float(((gammas >= confident_gamma) & ~correct).sum() / total),
            bin_counts=tuple(int(c) for c in counts),
            bin_confidence=tuple(float(v) for v in sums / safe),
            bin_accuracy=tuple(float(v) for v in hits / safe),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            key: list(v) if isinstance(v, tuple) else v for key, v in attrs.asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalibrationSummary:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**fields)


def write_metrics(
    folder: Path, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> None:
    """`metrics.json` (the summary) and `metrics.jsonl` (every logged row, in order)."""
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    )


def plot_curves(
    path: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str
) -> None:
    """One line per key of `rows` against their `step`."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            axis.plot(*zip(*points, strict=True), label=key, linewidth=1.2)
    axis.set_xlabel("optimizer step")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def plot_reliability(
    path: Path, before: CalibrationSummary, after: CalibrationSummary, title: str
) -> None:
    """The reliability diagram: pass rate against mean gamma per bin, before and after, with the
    diagonal a calibrated model lies on and each bin's sample count."""
    plt = _pyplot()
    figure, (diagram, counts) = plt.subplots(
        2, 1, figsize=(6, 7), dpi=100, gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    diagram.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    width = 1.0 / ORIGINAL_ECE_BINS
    centres = (np.arange(ORIGINAL_ECE_BINS) + 0.5) * width
    for offset, (name, summary) in enumerate((("before", before), ("after", after))):
        filled = np.asarray(summary.bin_counts) > 0
        diagram.plot(
            np.asarray(summary.bin_confidence)[filled],
            np.asarray(summary.bin_accuracy)[filled],
            "o-",
            label=(
                f"{name}: ECE {summary.ece:.3f}, "
                f"overconfident {summary.overconfident_error_rate:.3f}"
            ),
        )
        counts.bar(centres + (offset - 0.5) * width / 2, summary.bin_counts, width / 2, label=name)
    diagram.set_ylabel("pass rate in bin")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.set_title(title)
    diagram.legend(fontsize=8)
    counts.set_xlabel("calibrated gamma")
    counts.set_ylabel("samples")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
