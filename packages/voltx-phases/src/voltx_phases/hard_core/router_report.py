"""The report folder of phase 3.1 (`router_calibration_report`): metrics.json, the held-out
accuracy curve and the held-out confusion matrix as PNGs (`docs/formats.md`,
router_calibration_report).

Everything in it comes from the inputs and the config (no wall-clock time), so a resumed run's
report is byte for byte the uninterrupted run's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voltx_phases.hard_core.router_training import Evaluation
from voltx_phases.hard_core.strands_file import STRAND_NAMES

# Chance for a router that picks one of the five strands at random.
CHANCE_ACCURACY = 1.0 / len(STRAND_NAMES)


def report_metrics(
    final: Evaluation,
    train: Evaluation,
    thresholds: np.ndarray,
    history: Sequence[Mapping[str, Any]],
    counts: Mapping[str, Mapping[str, int]],
) -> dict[str, Any]:
    """The metrics.json document."""
    curve = [
        [row["step"], row["held_out_accuracy"]] for row in history if "held_out_accuracy" in row
    ]
    precision, recall = final.precision(), final.recall()
    return {
        "held_out_accuracy": final.accuracy,
        "held_out_activated_accuracy": final.activated_accuracy,
        "initial_held_out_accuracy": curve[0][1] if curve else None,
        "train_accuracy": train.accuracy,
        "chance_accuracy": CHANCE_ACCURACY,
        "per_strand": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "threshold": float(thresholds[k]),
                "train_queries": counts["train"][name],
                "held_out_queries": counts["held_out"][name],
                "held_out_unrouted": int(final.unrouted[k]),
            }
            for k, name in enumerate(STRAND_NAMES)
        },
        "confusion": {"strands": list(STRAND_NAMES), "counts": final.confusion.tolist()},
        "accuracy_curve": curve,
        "history": list(history),
    }


def write_report(
    folder: Path,
    *,
    final: Evaluation,
    train: Evaluation,
    thresholds: np.ndarray,
    history: Sequence[Mapping[str, Any]],
    counts: Mapping[str, Mapping[str, int]],
    phase_id: str,
) -> None:
    metrics = report_metrics(final, train, thresholds, history, counts)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    steps, accuracy = zip(*metrics["accuracy_curve"], strict=True)
    axis.plot(steps, accuracy, "o-", label="held-out accuracy (router's decision)")
    losses = [(row["step"], row["loss"]) for row in history if "loss" in row]
    axis.axhline(CHANCE_ACCURACY, color="grey", linestyle=":", label="chance (1 in 5)")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("accuracy")
    axis.set_ylim(0.0, 1.0)
    if losses:
        twin = axis.twinx()
        twin.plot(*zip(*losses, strict=True), color="tab:red", linewidth=1, label="training loss")
        twin.set_ylabel("training loss")
        twin.legend(loc="upper right")
    axis.legend(loc="upper left")
    axis.set_title(f"Phase {phase_id}: router calibration")
    figure.tight_layout()
    figure.savefig(folder / "accuracy_curve.png", metadata={"Software": None})
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    confusion = final.confusion
    rows = np.maximum(confusion.sum(axis=1, keepdims=True) + final.unrouted[:, None], 1)
    image = axis.imshow(confusion / rows, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(STRAND_NAMES)):
        for j in range(len(STRAND_NAMES)):
            share = confusion[i, j] / rows[i, 0]
            colour = "white" if share > 0.5 else "black"
            axis.text(j, i, str(confusion[i, j]), ha="center", va="center", color=colour)
    axis.set_xticks(range(len(STRAND_NAMES)), STRAND_NAMES, rotation=30, ha="right")
    axis.set_yticks(range(len(STRAND_NAMES)), STRAND_NAMES)
    axis.set_xlabel("routed to")
    axis.set_ylabel("labelled")
    axis.set_title(f"Held-out confusion (accuracy {final.accuracy:.1%})")
    figure.colorbar(image, ax=axis, label="share of the labelled strand's queries")
    figure.tight_layout()
    figure.savefig(folder / "confusion_matrix.png", metadata={"Software": None})
    plt.close(figure)
