"""The `vfn_e2e_report` folder of phase 4.1: ``metrics.json`` and two PNG curves.

``metrics.json`` holds every metrics row of the run (restored from checkpoints on a resume,
without wall-clock times, so a resumed run's report is the uninterrupted one's, byte for byte)
and a summary: the mean shaped reward, pass rate and compile rate of the first and last logged
rows, and the flow-matching validation loss at the start and the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """First-versus-last figures over the logged training rows (a quarter of them each)."""
    train = [row for row in rows if "reward" in row]
    valid = [row["valid_loss"] for row in rows if "valid_loss" in row]
    summary: dict[str, float] = {}
    if train:
        span = max(1, len(train) // 4)
        for key in ("reward", "pass_rate", "compile_rate"):
            summary[f"first_{key}"] = sum(r[key] for r in train[:span]) / span
            summary[f"last_{key}"] = sum(r[key] for r in train[-span:]) / span
    if valid:
        summary["first_valid_loss"], summary["last_valid_loss"] = valid[0], valid[-1]
    return summary


def write_report(folder: Path, phase_id: str, rows: Sequence[dict[str, Any]]) -> None:
    document = {"format": "voltx-e2e-report/1", "summary": summarise(rows), "rows": list(rows)}
    (folder / "metrics.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [row for row in rows if "reward" in row]
    steps = [row["step"] for row in train]
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key, label in (
        ("loss", "total loss"),
        ("flow", "flow-matching MSE"),
        ("reinforce", "REINFORCE loss"),
    ):
        axis.plot(steps, [row[key] for row in train], label=label, linewidth=1.2)
    valid = [(row["step"], row["valid_loss"]) for row in rows if "valid_loss" in row]
    if valid:
        axis.plot(*zip(*valid, strict=True), "o", label="validation flow MSE")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_title(f"Phase {phase_id}: end-to-end fine-tuning, losses")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "loss_curve.png")
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key, label in (
        ("reward", "mean shaped reward"),
        ("pass_rate", "pass rate"),
        ("compile_rate", "compile rate"),
    ):
        axis.plot(steps, [row[key] for row in train], label=label, linewidth=1.2)
    axis.set_xlabel("optimizer step")
    axis.set_title(f"Phase {phase_id}: rewards of the sampled code")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "reward_curve.png")
    plt.close(figure)
