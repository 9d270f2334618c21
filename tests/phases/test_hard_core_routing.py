"""The hard core's router, default strands and certainty engine, on crafted frames."""

from __future__ import annotations

import numpy as np
import pytest

from voltx_phases.hard_core.certainty import CertaintyReport, propagate
from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.pipeline import read_batch, read_frame
from voltx_phases.hard_core.router import NO_ROUTE, RoutingDecision, route
from voltx_phases.hard_core.safety import SafetyLevel, default_axioms
from voltx_phases.hard_core.strands import Strand, default_strands
from voltx_phases.hard_core.vectors import SLOT_DIM, cosine_matrix, seed_to_vector


def basis(index: int) -> np.ndarray:
    vector = np.zeros(SLOT_DIM, dtype=np.float32)
    vector[index] = 1.0
    return vector


def mixed(weights: dict[int, float]) -> np.ndarray:
    vector = np.zeros(SLOT_DIM, dtype=np.float32)
    for index, weight in weights.items():
        vector[index] = weight
    return vector


def frame_of(*slots: np.ndarray | None, gamma: list[float] | None = None) -> SlotFrame:
    r0 = np.stack([np.zeros(SLOT_DIM, np.float32) if s is None else s for s in slots])
    return SlotFrame.from_arrays(r0=r0, present=[s is not None for s in slots], gamma=gamma)


def strand(name: str, vector: np.ndarray, threshold: float = 0.3) -> Strand:
    return Strand(name=name, capability=vector, threshold=threshold)


def test_default_strands_are_the_originals_seeds_order_and_thresholds() -> None:
    seeds = {
        "math_engine": 0x4D415448454E4731,
        "hdc_algebra": 0x484443414C474231,
        "code_runner": 0x434F444552554E31,
        "weather": 0x5745415448455231,
    }
    strands = default_strands(weather=True)
    assert [s.name for s in strands] == list(seeds)
    assert [s.name for s in default_strands()] == ["math_engine", "hdc_algebra", "code_runner"]
    for s in strands:
        assert s.threshold == 0.3
        assert s.capability.tobytes() == seed_to_vector(seeds[s.name]).tobytes()


def test_a_slot_holding_a_capability_vector_routes_to_that_strand() -> None:
    strands = default_strands()
    frame = frame_of(basis(3), strands[2].capability, basis(4))
    decision = route(frame, strands)
    assert decision.strand_name == "code_runner"
    assert decision.slot == 1
    assert decision.activated
    assert decision.similarity == pytest.approx(1.0, abs=1e-6)


def test_one_global_argmax_over_strands_and_slots() -> None:
    strands = (strand("a", basis(0)), strand("b", basis(1)))
    # slot 0 matches a at 0.6; slot 1 matches b at 0.8: b wins though a is the earlier strand.
    frame = frame_of(mixed({0: 0.6, 5: 0.8}), mixed({1: 0.8, 5: 0.6}))
    decision = route(frame, strands)
    assert (decision.strand_name, decision.slot, decision.activated) == ("b", 1, True)
    assert decision.similarity == pytest.approx(0.8, abs=1e-6)


def test_ties_go_to_the_earlier_strand_then_the_earlier_slot() -> None:
    same = basis(7)
    strands = (strand("first", same), strand("second", same))
    decision = route(frame_of(basis(2), same, same), strands)
    assert (decision.strand_name, decision.slot) == ("first", 1)
    # Reversing the strand order reverses the winner: order alone breaks the tie.
    assert route(frame_of(same, same), strands[::-1]).strand_name == "second"


def test_an_absent_slot_is_never_routed_to() -> None:
    strands = (strand("a", basis(0)),)
    r0 = np.stack([basis(0), mixed({0: 0.5, 1: 0.5})])
    frame = SlotFrame.from_arrays(r0=r0, present=[False, True])
    decision = route(frame, strands)
    assert decision.slot == 1
    assert decision.similarity == pytest.approx(2**-0.5, abs=1e-6)


def test_no_present_slot_is_no_route() -> None:
    frame = SlotFrame.from_arrays(r0=np.stack([basis(0)]), present=[False])
    assert route(frame, default_strands()) == NO_ROUTE
    assert route(SlotFrame.empty(), default_strands()) == NO_ROUTE
    assert route(frame_of(basis(0)), ()) == NO_ROUTE


def test_below_threshold_records_the_best_pair_without_activating() -> None:
    strands = (strand("a", basis(0), threshold=0.9),)
    decision = route(frame_of(mixed({0: 0.6, 1: 0.8})), strands)
    assert decision == RoutingDecision("a", 0, decision.similarity, activated=False)
    assert decision.similarity == pytest.approx(0.6, abs=1e-6)


def test_a_cosine_equal_to_the_threshold_activates() -> None:
    slot = mixed({0: 0.6, 1: 0.8})
    exact = float(cosine_matrix(basis(0)[None, :], slot[None, :])[0, 0])
    assert route(frame_of(slot), (strand("a", basis(0), threshold=exact),)).activated
    above = float(np.nextafter(exact, 2.0))
    assert not route(frame_of(slot), (strand("a", basis(0), threshold=above),)).activated


def test_global_gamma_is_the_min_over_present_slots() -> None:
    frame = frame_of(basis(0), None, basis(1), basis(2), gamma=[0.9, 0.1, 0.8, 0.8])
    report = propagate(frame)
    assert report.weakest_slot == 2
    assert report.global_gamma == pytest.approx(0.8)


def test_global_gamma_of_an_empty_frame_is_zero() -> None:
    assert propagate(SlotFrame.empty()) == CertaintyReport(global_gamma=0.0, weakest_slot=None)


def test_frame_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="r0 must be"):
        SlotFrame.from_arrays(r0=np.zeros((2, 8)), present=[True, True])
    with pytest.raises(ValueError, match="present must be"):
        SlotFrame.from_arrays(r0=np.zeros((2, SLOT_DIM)), present=[True])
    with pytest.raises(ValueError, match="gamma must be"):
        SlotFrame.from_arrays(r0=np.zeros((2, SLOT_DIM)), present=[True, True], gamma=[1.0])


def test_a_batch_reading_gives_each_frame_its_route_gamma_and_verdict() -> None:
    strands = default_strands()
    axioms = default_axioms()
    r0 = np.zeros((2, 3, SLOT_DIM), dtype=np.float32)
    r0[0, 1] = strands[0].capability
    r0[1, 0] = axioms[0].vector
    present = np.array([[False, True, True], [True, False, False]])
    gamma = np.array([[0.1, 0.9, 0.6], [0.7, 0.0, 0.0]], dtype=np.float32)
    first, second = read_batch(r0, present, gamma)
    assert (first.routing.strand_name, first.routing.slot, first.routing.activated) == (
        "math_engine",
        1,
        True,
    )
    assert first.certainty == CertaintyReport(global_gamma=pytest.approx(0.6), weakest_slot=2)
    assert first.safety.level is SafetyLevel.PASS
    assert second.safety.level is SafetyLevel.HALT
    assert second.certainty.weakest_slot == 0
    assert read_frame(SlotFrame.empty()).routing == NO_ROUTE
    with pytest.raises(ValueError, match="a batch is"):
        read_batch(r0[0], present, gamma)
