"""Phase 3.2's report: held-out calibration before and after, with ECE's noise floor
(`docs/formats.md`, "gamma_calibration_report").

`metrics.json` holds no wall-clock time, so a run resumed after a kill writes the same bytes as
an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voltx_phases.hard_core.gamma_curve import GammaCurve
from voltx_phases.hard_core.gamma_fitting import (
    Reliability,
    brier_score,
    ece_noise_floor,
    log_loss,
    reliability,
)

if TYPE_CHECKING:
    from voltx_phases.hard_core.gamma_config import GammaCalibrationConfig
    from voltx_phases.hard_core.gamma_pairs import CalibrationPairs

ECE_BINS = (10, 15)  # 10: the original's ECE; 15: the usual choice in the calibration literature
# The ECE the plan targets on the full profile's 500 held-out problems.
TARGET_ECE = 0.08


def _scores(gammas: np.ndarray, outcome: np.ndarray) -> dict[str, float]:
    scores = {f"ece_{bins}": reliability(gammas, outcome, bins).ece for bins in ECE_BINS}
    scores["brier"] = brier_score(gammas, outcome)
    scores["log_loss"] = log_loss(gammas, outcome)
    return scores


def held_out_metrics(
    held_out: CalibrationPairs, curve: GammaCurve, config: GammaCalibrationConfig
) -> dict[str, Any]:
    """ECE (10 and 15 bins), Brier and log-loss of the raw and calibrated confidences on the
    held-out pairs, and the noise floor of ECE at their number."""
    raw, outcome = held_out.confidence, held_out.pass_rate
    floor: dict[str, float] = {}
    for bins in ECE_BINS:
        mean, high = ece_noise_floor(raw, bins, config.noise_floor_simulations, config.seed)
        floor[f"ece_{bins}_mean"], floor[f"ece_{bins}_p95"] = mean, high
    after = _scores(curve.apply(raw), outcome)
    return {
        "held_out_pairs": int(raw.size),
        "before": _scores(raw, outcome),
        "after": after,
        "noise_floor": floor,
        "target_ece": TARGET_ECE,
        "meets_target": after["ece_10"] < TARGET_ECE,
    }


def _panel(axis: Any, table: Reliability, title: str, bins: int) -> None:
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    filled = table.counts > 0
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    axis.bar(
        centres[filled],
        table.mean_outcome[filled],
        width=1.0 / bins,
        edgecolor="black",
        alpha=0.7,
        label="mean pass rate",
    )
    axis.plot(table.mean_confidence[filled], table.mean_outcome[filled], "o", color="C3")
    for centre, count, height in zip(
        centres[filled], table.counts[filled], table.mean_outcome[filled], strict=True
    ):
        axis.annotate(str(int(count)), (centre, height), ha="center", va="bottom", fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.08)
    axis.set_xlabel("gamma (bin counts above the bars)")
    axis.set_title(title, fontsize=9)


def write_report(
    folder: Path,
    phase_id: str,
    held_out: CalibrationPairs,
    curve: GammaCurve,
    metrics: dict[str, Any],
) -> None:
    """`metrics.json` and `reliability.png` (held-out pairs, 10 bins, raw and calibrated)."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = ECE_BINS[0]
    floor = metrics["noise_floor"][f"ece_{bins}_mean"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100, sharey=True)
    for axis, key, gammas in (
        (axes[0], "before", held_out.confidence),
        (axes[1], "after", curve.apply(held_out.confidence)),
    ):
        label = "raw confidence" if key == "before" else f"calibrated ({curve.method})"
        ece = metrics[key][f"ece_{bins}"]
        _panel(
            axis,
            reliability(gammas, held_out.pass_rate, bins),
            f"{label}: ECE {ece:.4f} (noise floor {floor:.4f} at n={held_out.confidence.size})",
            bins,
        )
    axes[0].set_ylabel("mean pass rate")
    axes[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(f"Phase {phase_id}: reliability on held-out problems")
    figure.tight_layout()
    figure.savefig(folder / "reliability.png")
    plt.close(figure)
