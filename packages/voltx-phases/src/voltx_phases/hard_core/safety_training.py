"""The learning part of phase 3.3: the 5 x 256 axiom matrix, its logistic loss over the
monitor's score, the thresholds chosen under the no-false-positive constraint, and the
monitor's figures before and after (`docs/phases.md`, 3.3).

The monitor flags a frame for axiom k when some present slot has cosine > threshold_k with the
axiom, so a frame's score for k is the largest cosine over its present slots. The loss reads
exactly that score (a max, whose gradient goes to the slot the monitor would read), so what is
trained is what is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.safety import Axiom, monitor
from voltx_phases.hard_core.safety_corpus import LabelledProgram
from voltx_phases.hard_core.safety_file import expected_names
from voltx_phases.hard_core.vectors import cosine_matrix

# Below any cosine: an absent slot never wins the max.
_ABSENT = -2.0


@attrs.frozen(eq=False)
class Frames:
    """The hard core's view of a list of programs: r0 [N, 16, 256] float32, present [N, 16]."""

    r0: np.ndarray
    present: np.ndarray

    def take(self, rows: Sequence[int]) -> Frames:
        index = np.asarray(rows, dtype=np.int64)
        return Frames(self.r0[index], self.present[index])

    def __len__(self) -> int:
        return int(self.r0.shape[0])


class AxiomMatrix(nn.Module):
    """The trainable axioms: `vectors` [5, 256] (normalised when read) and a logistic `bias` [5]
    per axiom, both starting from the constant axioms."""

    def __init__(self, axioms: Sequence[Axiom]) -> None:
        super().__init__()
        self.vectors = nn.Parameter(torch.from_numpy(np.stack([a.vector for a in axioms]).copy()))
        self.bias = nn.Parameter(torch.tensor([a.threshold for a in axioms], dtype=torch.float32))

    def scores(self, slots: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """[B, 5]: each frame's largest cosine over present slots, per axiom. `slots` are unit
        rows [B, S, 256] (see `unit_slots`)."""
        axes = F.normalize(self.vectors, dim=1)
        cosines = torch.einsum("bsd,kd->bsk", slots, axes)
        cosines = cosines.masked_fill(~present[..., None], _ABSENT)
        return cosines.max(dim=1).values


def unit_slots(frames: Frames, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot vectors scaled to unit length (a cosine is then a dot product) and the mask."""
    r0 = torch.from_numpy(frames.r0).to(device)
    return F.normalize(r0, dim=-1), torch.from_numpy(frames.present).to(device)


def targets(
    programs: Sequence[LabelledProgram], benign_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, weights), both [N, 5].

    Axiom k's positives are the programs labelled k, its negatives the benign ones; an attack
    labelled with another axiom is left out of k's loss (weight 0), since flagging it under k
    as well is no error. Positives and negatives are weighted to equal totals per axiom, the
    negatives then times `benign_weight`."""
    names = expected_names()
    labels = torch.zeros(len(programs), len(names))
    weights = torch.zeros(len(programs), len(names))
    benign = [i for i, p in enumerate(programs) if p.benign]
    for k, name in enumerate(names):
        positives = [i for i, p in enumerate(programs) if p.axiom == name]
        if positives:
            labels[positives, k] = 1.0
            weights[positives, k] = 1.0 / len(positives)
        if benign:
            weights[benign, k] = benign_weight / len(benign)
    return labels, weights


def logistic_loss(
    model: AxiomMatrix,
    slots: torch.Tensor,
    present: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Weighted binary cross-entropy of scale * (score - bias) against the labels."""
    logits = scale * (model.scores(slots, present) - model.bias)
    return F.binary_cross_entropy_with_logits(logits, labels, weight=weights, reduction="sum")


def max_cosines(frames: Frames, vectors: np.ndarray) -> np.ndarray:
    """[N, 5] float64: each frame's largest cosine over present slots with each axiom, computed
    as the monitor computes it (`hard_core/safety.py`); -inf for a frame with no present slot."""
    out = np.full((len(frames), vectors.shape[0]), -np.inf)
    for row in range(len(frames)):
        slots = np.flatnonzero(frames.present[row])
        if slots.size:
            out[row] = cosine_matrix(frames.r0[row, slots], vectors).max(axis=0)
    return out


def constrained_thresholds(
    benign_scores: np.ndarray, fallback: Sequence[float], margin_sd: float
) -> list[float]:
    """Per axiom: the highest training benign score plus `margin_sd` standard deviations of the
    training benign scores, so that (the monitor being strict) no training benign program is
    flagged; `fallback` (the constant threshold) when there is no benign score. Rounded up to
    float32, the precision the file stores."""
    thresholds = []
    for k, default in enumerate(fallback):
        column = benign_scores[:, k]
        column = column[np.isfinite(column)]
        value = float(column.max() + margin_sd * column.std()) if column.size else float(default)
        stored = np.float32(value)
        if float(stored) < value:  # float32 rounding must not pull the threshold under a score
            stored = np.nextafter(stored, np.float32(np.inf))
        thresholds.append(float(stored))
    return thresholds


def flags(frames: Frames, axioms: Sequence[Axiom]) -> np.ndarray:
    """[N, 5] bool: which axioms the monitor itself flags on each frame."""
    names = [a.name for a in axioms]
    out = np.zeros((len(frames), len(axioms)), dtype=bool)
    for row in range(len(frames)):
        frame = SlotFrame.from_arrays(frames.r0[row], frames.present[row])
        for violation in monitor(frame, tuple(axioms)):
            out[row, names.index(violation.axiom)] = True
    return out


def error_rates(programs: Sequence[LabelledProgram], flagged: np.ndarray) -> dict[str, Any]:
    """False-negative and false-positive rates per axiom and overall.

    Axiom k's FN rate: the share of programs labelled k that k does not flag. Its FP rate: the
    share of benign programs it flags. Overall: attacks no axiom flags, benign programs any
    axiom flags."""
    names = expected_names()
    benign = np.array([p.benign for p in programs], dtype=bool)
    per_axiom = {}
    for k, name in enumerate(names):
        own = np.array([p.axiom == name for p in programs], dtype=bool)
        per_axiom[name] = {
            "attacks": int(own.sum()),
            "false_negative_rate": _rate(~flagged[own, k]),
            "false_positive_rate": _rate(flagged[benign, k]),
        }
    attacks = ~benign
    any_flag = np.asarray(flagged.any(axis=1), dtype=bool)
    return {
        "per_axiom": per_axiom,
        "benign": int(benign.sum()),
        "attacks": int(attacks.sum()),
        "attacks_caught": int(any_flag[attacks].sum()),
        "benign_flagged": int(any_flag[benign].sum()),
        "false_negative_rate": _rate(~any_flag[attacks]),
        "false_positive_rate": _rate(any_flag[benign]),
    }


def _rate(misses: np.ndarray) -> float | None:
    return float(misses.mean()) if misses.size else None
