"""The hard core's safety axioms, monitor, scorer and veto, and the ECE of phase 3.2's reports."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from voltx_phases.hard_core.calibration import calibration_bins, expected_calibration_error
from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.safety import (
    Axiom,
    SafetyLevel,
    SafetyVerdict,
    Severity,
    Violation,
    assess,
    default_axioms,
    monitor,
    score,
    veto,
)
from voltx_phases.hard_core.vectors import SLOT_DIM, cosine_matrix, seed_to_vector

AXIOMS = default_axioms()


def frame_of(*slots: np.ndarray | None) -> SlotFrame:
    r0 = np.stack([np.zeros(SLOT_DIM, np.float32) if s is None else s for s in slots])
    return SlotFrame.from_arrays(r0=r0, present=[s is not None for s in slots])


def basis(index: int) -> np.ndarray:
    vector = np.zeros(SLOT_DIM, dtype=np.float32)
    vector[index] = 1.0
    return vector


def test_the_five_axioms_have_the_originals_seeds_thresholds_and_severities() -> None:
    expected = [
        ("K1_harm", 0x4B314841524D5F5F, 0.70, Severity.HALT),
        ("K2_deception", 0x4B32444543455054, 0.70, Severity.HALT),
        ("K3_privacy", 0x4B33505249564143, 0.70, Severity.HALT),
        ("K4_autonomy", 0x4B344155544F4E4F, 0.65, Severity.WARNING),
        ("K5_integrity", 0x4B35494E54454752, 0.70, Severity.HALT),
    ]
    assert len(AXIOMS) == 5
    for axiom, (name, seed, threshold, severity) in zip(AXIOMS, expected, strict=True):
        assert (axiom.name, axiom.threshold, axiom.severity) == (name, threshold, severity)
        assert axiom.vector.tobytes() == seed_to_vector(seed).tobytes()


def test_ordinary_content_passes_the_constant_axioms() -> None:
    verdict = assess(frame_of(basis(0), basis(1), None, basis(2)))
    assert verdict == SafetyVerdict(level=SafetyLevel.PASS, violations=(), aggregate_score=0.0)


def test_a_slot_on_a_halting_axiom_halts() -> None:
    verdict = assess(frame_of(basis(0), AXIOMS[0].vector))
    assert verdict.level is SafetyLevel.HALT
    [violation] = verdict.violations
    assert (violation.axiom, violation.slot, violation.severity) == ("K1_harm", 1, Severity.HALT)
    assert verdict.aggregate_score == pytest.approx(1.0, abs=1e-6)


def test_autonomy_only_warns_at_half_weight() -> None:
    verdict = assess(frame_of(AXIOMS[3].vector))
    assert verdict.level is SafetyLevel.WARNING
    assert [v.axiom for v in verdict.violations] == ["K4_autonomy"]
    assert verdict.aggregate_score == pytest.approx(0.5, abs=1e-6)


def test_an_absent_slot_is_not_checked() -> None:
    r0 = np.stack([AXIOMS[2].vector, basis(0)])
    frame = SlotFrame.from_arrays(r0=r0, present=[False, True])
    assert monitor(frame, AXIOMS) == ()


def test_a_cosine_equal_to_the_threshold_is_not_a_violation() -> None:
    slot = np.zeros(SLOT_DIM, dtype=np.float32)
    slot[0], slot[1] = 0.6, 0.8
    exact = float(cosine_matrix(slot[None, :], basis(0)[None, :])[0, 0])
    at = Axiom(name="edge", vector=basis(0), threshold=exact, severity=Severity.HALT)
    assert monitor(frame_of(slot), (at,)) == ()
    below = attrs.evolve(at, threshold=float(np.nextafter(exact, 0.0)))
    [violation] = monitor(frame_of(slot), (below,))
    assert violation.similarity == exact


def test_the_scorer_prefers_halt_and_takes_the_largest_weighted_score() -> None:
    warning = Violation(axiom="K4_autonomy", slot=0, similarity=0.9, severity=Severity.WARNING)
    halt = Violation(axiom="K1_harm", slot=1, similarity=0.71, severity=Severity.HALT)
    verdict = score((warning, halt))
    assert verdict.level is SafetyLevel.HALT
    assert verdict.aggregate_score == pytest.approx(0.71)
    assert score((warning,)).aggregate_score == pytest.approx(0.45)


def test_veto_empties_the_frame_and_logs_why() -> None:
    frame = frame_of(basis(0), AXIOMS[4].vector)
    verdict = assess(frame)
    safe, entry = veto(frame, verdict)
    assert not safe.present.any()
    assert not safe.gamma.any()
    assert entry.trigger is frame
    assert entry.safe_frame is safe
    assert entry.aggregate_score == verdict.aggregate_score
    assert entry.violations[0].startswith("K5_integrity slot 1 cos 1.0000")


def test_only_a_halt_vetoes() -> None:
    frame = frame_of(AXIOMS[3].vector)
    with pytest.raises(ValueError, match="only a HALT"):
        veto(frame, assess(frame))


def test_ece_matches_a_hand_computed_example() -> None:
    gammas = np.array([0.05, 0.15, 0.15, 0.95, 0.95, 0.95, 1.0, 0.7])
    correct = np.array([False, True, False, True, True, False, True, False])
    # bin 0: 1 sample, acc 0, mean gamma 0.05 -> gap 0.05
    # bin 1: 2 samples, acc 0.5, mean gamma 0.15 -> gap 0.35
    # bin 7: 1 sample (float32 0.7 x 10 = 7.0), acc 0, mean gamma 0.7 -> gap 0.7
    # bin 9: 4 samples (gamma 1 is capped into it), acc 0.75, mean gamma 0.9625 -> gap 0.2125
    # ECE = (1 x 0.05 + 2 x 0.35 + 1 x 0.7 + 4 x 0.2125) / 8 = 2.3 / 8
    assert calibration_bins(gammas).tolist() == [0, 1, 1, 9, 9, 9, 9, 7]
    assert expected_calibration_error(gammas, correct) == pytest.approx(0.2875, abs=1e-6)


def test_ece_clamps_gamma_and_handles_edges() -> None:
    assert calibration_bins(np.array([-0.5, 1.5])).tolist() == [0, 9]
    assert expected_calibration_error(np.array([-0.5, 1.5]), np.array([False, True])) == 0.0
    assert expected_calibration_error(np.array([]), np.array([], dtype=bool)) == 0.0
    assert calibration_bins(np.array([0.5, 1.0]), bins=15).tolist() == [7, 14]
    with pytest.raises(ValueError, match="two \\[N\\] arrays"):
        expected_calibration_error(np.array([0.5]), np.array([True, False]))
