"""The `vfn_scaling_report` folder of phase 5.1: ``metrics.json`` and ``loss_curves.png``
(layout in docs/formats.md). Built from the run's metric rows only, never from wall-clock times,
so a resumed run writes the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voltx_phases.scale.scaling_config import ScalingConfig


def stage_summaries(rows: list[dict[str, Any]], config: ScalingConfig) -> list[dict[str, Any]]:
    """Per stage: parameters, the velocity gap right after growing, validation flow loss of the
    teacher, of the student as grown, and of the student trained."""
    summaries = []
    for index, stage in enumerate(config.stages):
        mine = [row for row in rows if row["stage"] == index]
        grown = next(row for row in mine if "growth_gap" in row)
        trained = next(row for row in mine if "finished" in row)
        steps = [row for row in mine if "loss" in row]
        summaries.append(
            {
                "output": stage.output,
                "width_factor": stage.width_factor,
                "parameters": int(grown["parameters"]),
                "growth_max_velocity_gap": grown["growth_gap"],
                "teacher_valid_flow": grown["teacher_valid_flow"],
                "grown_valid_flow": grown["valid_flow"],
                "trained_valid_flow": trained["valid_flow"],
                "first_loss": steps[0]["loss"] if steps else None,
                "last_loss": steps[-1]["loss"] if steps else None,
                "steps": stage.steps,
            }
        )
    return summaries


def write_report(
    folder: Path, rows: list[dict[str, Any]], config: ScalingConfig, phase_id: str
) -> None:
    document = {"stages": stage_summaries(rows, config), "rows": rows}
    (folder / "metrics.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(config.stages), figsize=(6 * len(config.stages), 4.5))
    for index, (axis, stage) in enumerate(
        zip(list(getattr(axes, "flat", [axes])), config.stages, strict=True)
    ):
        steps = [row for row in rows if row["stage"] == index and "loss" in row]
        x = [row["step"] for row in steps]
        for key, label in (
            ("loss", "total"),
            ("flow", "flow matching"),
            ("distill", "distillation"),
        ):
            axis.plot(x, [row[key] for row in steps], label=label, linewidth=1.2)
        axis.set_yscale("log")
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("loss (global batch mean)")
        twin = axis.twinx()
        twin.plot(x, [row["alpha"] for row in steps], "k:", label="alpha", linewidth=1.0)
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("alpha (flow-matching share)")
        axis.set_title(f"{stage.output}: x{stage.width_factor} width")
        axis.legend(loc="best")
    figure.suptitle(f"Phase {phase_id}: VFN growth and distillation")
    figure.tight_layout()
    figure.savefig(folder / "loss_curves.png")
    plt.close(figure)
