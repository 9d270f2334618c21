"""The learning part of phase 3.1: the five strands as trainable vectors, the loss, and the
evaluation with the router's own decision rule (`docs/phases.md`, 3.1).

    vectors = StrandVectors.initial()                # the constant strands' seed vectors
    loss, parts = router_loss(vectors, batch, config)
    evaluation = evaluate(vectors.strands(), held_out)

A strand's score for a query is what the router compares: the largest cosine between the
strand's capability vector and any present slot of the query's frame. The loss is a softmax
cross-entropy over the five scores (the contrastive term: the right strand's score up, the
others' down) plus a per-strand sigmoid term on score - threshold, which is what learns the
thresholds: each moves to where its strand's own queries sit above it and other strands'
queries below it.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.router import route
from voltx_phases.hard_core.router_config import RouterCalibrationConfig
from voltx_phases.hard_core.strands import DEFAULT_STRAND_THRESHOLD, Strand
from voltx_phases.hard_core.strands_file import STRAND_NAMES
from voltx_phases.hard_core.vectors import ascii_seed, seed_to_vector

# The seed tags of the starting vectors. CodeRunner and MathEngine start from the constant
# strands of the same names (code_runner, math_engine); the other three have no constant strand,
# so they get seeds of their own in the same 8-byte ASCII form.
INITIAL_SEED_TAGS = ("CODERUN1", "CODEDBG1", "CODEXPL1", "MATHENG1", "MEMRETR1")

# Below any cosine: what an absent slot scores, so the max over slots never picks it (and, unlike
# -inf, it keeps gradients finite for a frame with no present slot).
_ABSENT = -2.0


@attrs.frozen(eq=False)
class FrameBatch:
    """Frames and labels as tensors: `r0` [N, S, 256], `present` [N, S] bool, `labels` [N]."""

    r0: torch.Tensor
    present: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: torch.Tensor) -> FrameBatch:
        return FrameBatch(self.r0[indices], self.present[indices], self.labels[indices])

    def to(self, device: torch.device) -> FrameBatch:
        return FrameBatch(self.r0.to(device), self.present.to(device), self.labels.to(device))


class StrandVectors(nn.Module):
    """The trainable strands: `capabilities` [5, 256] (used normalised) and `thresholds` [5]."""

    def __init__(self, capabilities: np.ndarray, thresholds: np.ndarray) -> None:
        super().__init__()
        self.capabilities = nn.Parameter(torch.tensor(capabilities, dtype=torch.float32))
        self.thresholds = nn.Parameter(torch.tensor(thresholds, dtype=torch.float32))

    @classmethod
    def initial(cls) -> StrandVectors:
        """The constant strands' vectors and threshold, in `STRAND_NAMES` order."""
        vectors = np.stack([seed_to_vector(ascii_seed(tag)) for tag in INITIAL_SEED_TAGS])
        thresholds = np.full(len(STRAND_NAMES), DEFAULT_STRAND_THRESHOLD, dtype=np.float32)
        return cls(vectors, thresholds)

    def unit_capabilities(self) -> torch.Tensor:
        return F.normalize(self.capabilities, dim=1)

    def scores(self, r0: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """[N, 5]: per strand, the largest cosine with a present slot (`_ABSENT` if none)."""
        slots = F.normalize(r0, dim=-1)  # a zero (absent) slot stays zero
        cosines = torch.einsum("nsd,kd->nks", slots, self.unit_capabilities())
        cosines = cosines.masked_fill(~present[:, None, :], _ABSENT)
        return cosines.amax(dim=2)

    @torch.no_grad()
    def strands(self) -> tuple[Strand, ...]:
        """The current vectors as the router's strands (unit float32 rows, read-only)."""
        vectors = self.unit_capabilities().detach().cpu().numpy().astype(np.float32)
        thresholds = self.thresholds.detach().cpu().numpy()
        strands = []
        for name, vector, threshold in zip(STRAND_NAMES, vectors, thresholds, strict=True):
            vector.setflags(write=False)
            strands.append(Strand(name=name, capability=vector, threshold=float(threshold)))
        return tuple(strands)


def router_loss(
    vectors: StrandVectors, batch: FrameBatch, config: RouterCalibrationConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Contrastive cross-entropy over the strands' scores plus the thresholds' sigmoid term."""
    scores = vectors.scores(batch.r0, batch.present)
    contrastive = F.cross_entropy(scores / config.temperature, batch.labels)
    targets = F.one_hot(batch.labels, len(STRAND_NAMES)).to(scores.dtype)
    margins = (scores - vectors.thresholds) / config.threshold_temperature
    # Each query is a positive for one strand and a negative for four: weighting positives by
    # four keeps the thresholds from rising above every score (no strand ever activated).
    balance = torch.full((len(STRAND_NAMES),), float(len(STRAND_NAMES) - 1), device=scores.device)
    threshold_term = F.binary_cross_entropy_with_logits(margins, targets, pos_weight=balance)
    loss = contrastive + config.threshold_weight * threshold_term
    return loss, {
        "loss": float(loss.detach()),
        "contrastive": float(contrastive.detach()),
        "threshold": float(threshold_term.detach()),
    }


@attrs.frozen
class Evaluation:
    """The router's decisions on labelled frames. `confusion[i, j]`: queries of strand i routed
    to strand j; `unrouted[i]`: queries of strand i with no present slot (no decision);
    `activated_correct[i]`: correctly routed and above the strand's threshold."""

    confusion: np.ndarray  # [5, 5] int64
    unrouted: np.ndarray  # [5] int64
    activated_correct: np.ndarray  # [5] int64

    @property
    def total(self) -> int:
        return int(self.confusion.sum() + self.unrouted.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion)) / max(self.total, 1)

    @property
    def activated_accuracy(self) -> float:
        return float(self.activated_correct.sum()) / max(self.total, 1)

    def precision(self) -> np.ndarray:
        routed_to = self.confusion.sum(axis=0)
        shares: np.ndarray = np.divide(
            np.diag(self.confusion), routed_to, out=np.zeros(len(routed_to)), where=routed_to > 0
        )
        return shares

    def recall(self) -> np.ndarray:
        labelled = self.confusion.sum(axis=1) + self.unrouted
        shares: np.ndarray = np.divide(
            np.diag(self.confusion), labelled, out=np.zeros(len(labelled)), where=labelled > 0
        )
        return shares


def evaluate(
    strands: tuple[Strand, ...], r0: np.ndarray, present: np.ndarray, labels: np.ndarray
) -> Evaluation:
    """Route every frame with `hard_core.router.route` (the decision the model makes at
    inference: one global argmax over strands x present slots) and count the outcomes."""
    index = {strand.name: k for k, strand in enumerate(strands)}
    count = len(strands)
    confusion = np.zeros((count, count), dtype=np.int64)
    unrouted = np.zeros(count, dtype=np.int64)
    activated = np.zeros(count, dtype=np.int64)
    gamma = np.ones(present.shape[1], dtype=np.float32)
    for vectors, mask, label in zip(r0, present, labels, strict=True):
        decision = route(SlotFrame.from_arrays(vectors, mask, gamma), strands)
        if decision.strand_name is None:
            unrouted[label] += 1
            continue
        chosen = index[decision.strand_name]
        confusion[label, chosen] += 1
        if chosen == label and decision.activated:
            activated[label] += 1
    return Evaluation(confusion=confusion, unrouted=unrouted, activated_correct=activated)
