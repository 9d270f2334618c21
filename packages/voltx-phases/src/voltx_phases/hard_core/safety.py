"""The safety layer's pieces: the five axioms K1-K5, the monitor, the scorer and the veto
(`docs/phases.md`, "Hard core").

    verdict = assess(frame)            # monitor + scorer with the constant axioms
    if verdict.level is SafetyLevel.HALT:
        safe_frame, entry = veto(frame, verdict)

The axioms are constant unit vectors from `seed_to_vector`; phase 3.3 refines them, and
`assess(frame, axioms=refined)` takes refined ones. The monitor reads every present slot's R0
vector; a violation is a cosine strictly above the axiom's threshold, so a cosine equal to the
threshold passes.
"""

from __future__ import annotations

import enum

import attrs
import numpy as np

from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.vectors import ascii_seed, cosine_matrix, seed_to_vector


class Severity(enum.Enum):
    """What a violated axiom does: HALT vetoes the frame, WARNING only reports."""

    HALT = "halt"
    WARNING = "warning"


# The scorer's weight of a violation's cosine: a warning counts half as much as a halt.
SEVERITY_WEIGHT = {Severity.HALT: 1.0, Severity.WARNING: 0.5}


class SafetyLevel(enum.Enum):
    """The verdict: HALT if any halting axiom is violated, else WARNING if any is, else PASS."""

    PASS = "pass"
    WARNING = "warning"
    HALT = "halt"


@attrs.frozen(eq=False)
class Axiom:
    """A safety axiom: a unit float32 [256] vector and the cosine above which a slot violates it."""

    name: str
    vector: np.ndarray
    threshold: float
    severity: Severity

    @classmethod
    def from_seed(cls, name: str, seed: int, threshold: float, severity: Severity) -> Axiom:
        vector = seed_to_vector(seed)
        vector.setflags(write=False)
        return cls(name=name, vector=vector, threshold=threshold, severity=severity)


# (name, seed tag, threshold, severity), in the original's order. K4 is the only warning, with a
# lower threshold: autonomy is flagged early but never blocks on its own.
_AXIOM_TABLE = (
    ("K1_harm", "K1HARM__", 0.70, Severity.HALT),  # 0x4b314841524d5f5f
    ("K2_deception", "K2DECEPT", 0.70, Severity.HALT),  # 0x4b32444543455054
    ("K3_privacy", "K3PRIVAC", 0.70, Severity.HALT),  # 0x4b33505249564143
    ("K4_autonomy", "K4AUTONO", 0.65, Severity.WARNING),  # 0x4b344155544f4e4f
    ("K5_integrity", "K5INTEGR", 0.70, Severity.HALT),  # 0x4b35494e54454752
)


def default_axioms() -> tuple[Axiom, ...]:
    """The five constant axioms K1-K5."""
    return tuple(
        Axiom.from_seed(name, ascii_seed(tag), threshold, severity)
        for name, tag, threshold, severity in _AXIOM_TABLE
    )


@attrs.frozen
class Violation:
    """One (axiom, slot) pair whose cosine is above the axiom's threshold."""

    axiom: str
    slot: int
    similarity: float
    severity: Severity

    @property
    def weighted_score(self) -> float:
        return self.similarity * SEVERITY_WEIGHT[self.severity]

    def describe(self) -> str:
        return f"{self.axiom} slot {self.slot} cos {self.similarity:.4f} ({self.severity.value})"


@attrs.frozen
class SafetyVerdict:
    """The scorer's result: the level, the violations found, and the largest weighted score."""

    level: SafetyLevel
    violations: tuple[Violation, ...]
    aggregate_score: float


def monitor(frame: SlotFrame, axioms: tuple[Axiom, ...]) -> tuple[Violation, ...]:
    """Every (axiom, present slot) pair with cosine > threshold, slot-major as the original
    lists them."""
    slots = frame.present_slots
    if slots.size == 0 or not axioms:
        return ()
    similarities = cosine_matrix(frame.r0[slots], np.stack([axiom.vector for axiom in axioms]))
    return tuple(
        Violation(
            axiom=axiom.name,
            slot=int(slot),
            similarity=float(similarities[row, column]),
            severity=axiom.severity,
        )
        for row, slot in enumerate(slots)
        for column, axiom in enumerate(axioms)
        if similarities[row, column] > axiom.threshold
    )


def score(violations: tuple[Violation, ...]) -> SafetyVerdict:
    """Level from the severities present; aggregate = max of similarity x severity weight (0 when
    there is no violation)."""
    severities = {violation.severity for violation in violations}
    if Severity.HALT in severities:
        level = SafetyLevel.HALT
    elif Severity.WARNING in severities:
        level = SafetyLevel.WARNING
    else:
        level = SafetyLevel.PASS
    aggregate = max((violation.weighted_score for violation in violations), default=0.0)
    return SafetyVerdict(level=level, violations=violations, aggregate_score=aggregate)


def assess(frame: SlotFrame, axioms: tuple[Axiom, ...] | None = None) -> SafetyVerdict:
    """Monitor then score `frame` against `axioms` (the constant K1-K5 by default)."""
    return score(monitor(frame, default_axioms() if axioms is None else axioms))


@attrs.frozen(eq=False)
class VetoEntry:
    """The veto log's record of one halted frame."""

    trigger: SlotFrame
    violations: tuple[str, ...]
    aggregate_score: float
    safe_frame: SlotFrame


def veto(frame: SlotFrame, verdict: SafetyVerdict) -> tuple[SlotFrame, VetoEntry]:
    """Replace a halted frame by an empty one (no present slot, gamma 0) and the log entry that
    says why.

    Raises ValueError for a verdict that is not HALT: warnings never veto."""
    if verdict.level is not SafetyLevel.HALT:
        raise ValueError(f"only a HALT verdict vetoes a frame, got {verdict.level.value}")
    safe = SlotFrame.empty(frame.present.shape[0])
    entry = VetoEntry(
        trigger=frame,
        violations=tuple(violation.describe() for violation in verdict.violations),
        aggregate_score=verdict.aggregate_score,
        safe_frame=safe,
    )
    return safe, entry
