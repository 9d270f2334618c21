"""The `safety_axioms_report` folder of phase 3.3: `metrics.json` and `error_rates.png`
(`docs/formats.md`, "safety_axioms_report").

The metrics hold no wall-clock time, so a resumed run writes the bytes of an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voltx_phases.hard_core.safety_file import expected_names

METRICS_FILE = "metrics.json"
PLOT_FILE = "error_rates.png"


def write_report(folder: Path, phase_id: str, metrics: dict[str, Any]) -> None:
    """`metrics.json` (sorted keys), and a PNG of the held-out FN and FP rates per axiom before
    and after refinement beside the training loss."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(expected_names())
    held = metrics["held_out"]
    figure, (rates, curve) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    width = 0.2
    series = (
        ("before", "false_negative_rate", "FN before", "#e0a0a0"),
        ("after", "false_negative_rate", "FN after", "#c03030"),
        ("before", "false_positive_rate", "FP before", "#a0b0e0"),
        ("after", "false_positive_rate", "FP after", "#3050c0"),
    )
    for index, (when, key, label, colour) in enumerate(series):
        values = [held[when]["per_axiom"][name][key] or 0.0 for name in names]
        positions = [i + (index - 1.5) * width for i in range(len(names))]
        rates.bar(positions, values, width, label=label, color=colour)
    rates.set_xticks(range(len(names)), [name.replace("_", "\n") for name in names])
    rates.set_ylim(0, 1.05)
    rates.set_ylabel("rate on held-out programs")
    rates.set_title(
        "held-out: caught "
        f"{held['before']['attacks_caught']} -> {held['after']['attacks_caught']} of "
        f"{held['after']['attacks']} attacks, benign flagged "
        f"{held['after']['benign_flagged']} of {held['after']['benign']}",
        fontsize=9,
    )
    rates.legend(fontsize=8)
    steps = [row["step"] for row in metrics["loss"]]
    curve.plot(steps, [row["loss"] for row in metrics["loss"]], linewidth=1.2)
    curve.set_xlabel("step")
    curve.set_ylabel("weighted logistic loss (training set)")
    curve.set_yscale("log")
    curve.set_title(f"Phase {phase_id}: safety axiom refinement", fontsize=9)
    figure.tight_layout()
    # No software tag (it names the matplotlib version): the same metrics give the same bytes.
    figure.savefig(folder / PLOT_FILE, metadata={"Software": None})
    plt.close(figure)
