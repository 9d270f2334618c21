"""The report folder of a language phase: ``metrics.json`` and ``language_decoder.png``.

``metrics.json`` (`docs/formats.md`, language decoder report) holds, per language, where the
problems came from, how many trained and were held out, the held-out loss and token accuracy
before training (the Python decoder it starts from) and after, and the sandbox's verdict on the
code decoded from each held-out solution's frame (pass rate, failure reasons, one row per
problem); then every metrics row of the run. Nothing in it depends on the clock, so a resumed
run writes the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURE = "language_decoder.png"
METRICS = "metrics.json"


def write_report(
    folder: Path,
    phase_id: str,
    output: str,
    summary: dict[str, dict[str, Any]],
    history: list[dict[str, Any]],
) -> None:
    document = {
        "phase": phase_id,
        "artifact": output,
        "languages": summary,
        "history": history,
    }
    (folder / METRICS).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    _plot(folder / FIGURE, phase_id, summary, history)


def _plot(
    path: Path, phase_id: str, summary: dict[str, dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (losses, accuracy, passes) = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
    train = [(row["step"], row["loss"]) for row in history if "loss" in row]
    if train:
        losses.plot(*zip(*train, strict=True), label="training loss", linewidth=1.2)
    for language in summary:
        key = f"valid_loss_{language}"
        points = [(row["step"], row[key]) for row in history if key in row]
        if points:
            losses.plot(*zip(*points, strict=True), "o-", label=f"held-out loss, {language}")
        key = f"token_accuracy_{language}"
        points = [(row["epoch"], row[key]) for row in history if key in row]
        if points:
            accuracy.plot(*zip(*points, strict=True), "o-", label=language)
    losses.set_xlabel("optimizer step")
    losses.set_ylabel("cross-entropy")
    losses.set_title("loss")
    losses.legend(fontsize=8)
    accuracy.set_xlabel("epoch (0: the code_decoder it starts from)")
    accuracy.set_ylabel("token accuracy")
    accuracy.set_ylim(0, 1)
    accuracy.set_title("held-out token accuracy")
    accuracy.legend(fontsize=8)
    names = list(summary)
    places = range(len(names))
    kinds: tuple[tuple[float, str, str | None], ...] = (
        (-0.2, "from the solution's frame", None),
        (0.2, "end to end", "end_to_end"),
    )
    for offset, label, part in kinds:
        figures = [summary[name] if part is None else summary[name][part] for name in names]
        bars = passes.bar(
            [place + offset for place in places],
            [facts["pass_rate"] for facts in figures],
            width=0.4,
            label=label,
        )
        for bar, facts in zip(bars, figures, strict=True):
            passes.annotate(
                f"{facts['passed']}/{facts['sandbox_runs']}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
            )
    passes.set_xticks(list(places), names)
    passes.legend(fontsize=8)
    passes.set_ylim(0, 1)
    passes.set_ylabel("pass rate")
    passes.set_title("held-out problems passing in the sandbox")
    figure.suptitle(f"Phase {phase_id}: language decoder")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
