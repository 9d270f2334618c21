"""Plans time a GPU phase from its work: FLOP over an H100's bf16 throughput at 35%.

voltx-core alone: a made-up phase whose work is 1e12 FLOP per configured step. The Volt X
estimators themselves are tested in tests/phases/test_volt_x_work.py.
"""

from __future__ import annotations

import attrs
import pytest

from voltx import PhaseError, PhaseSpec, Resources, TrainingWork
from voltx.backend import Quote
from voltx.planning.estimates import (
    ASSUMED_UTILISATION,
    REFERENCE_FLOP_PER_S,
    estimate_phase,
    spec_hours,
)


@attrs.frozen
class _Steps:
    steps: int = 1000


def _spec(**fields: object) -> PhaseSpec:
    settings = {
        "id": "9.9",
        "name": "counted",
        "entry": "nowhere:run",
        "config_class": _Steps,
        "resources": Resources(gpus=1),
        "profile_resources": {"tiny": Resources(cpu_cores=1)},
        "reference_hours": 150.0,
        "work": lambda config: TrainingWork(flop=1e12 * config.steps, basis="1e12 per step"),
    }
    settings.update(fields)
    return PhaseSpec(**settings)  # type: ignore[arg-type]


def test_a_gpu_profile_is_timed_from_its_work_and_the_gpu_speed() -> None:
    spec = _spec()
    hours = 1000 * 1e12 / (REFERENCE_FLOP_PER_S * ASSUMED_UTILISATION) / 3600
    assert spec_hours(spec, "full", {"steps": 1000}) == pytest.approx((hours, hours * 1.5))
    assert spec_hours(spec, "full", {"steps": 2000})[0] == pytest.approx(2 * hours)
    fast = estimate_phase(spec, "full", Quote(host="h100"), 0, config={"steps": 1000})
    assert fast.source == "work"
    assert fast.hours == pytest.approx((hours, hours * 1.5))
    assert fast.basis == "1.0e+15 FLOP at 35% of H100 bf16 (1e12 per step)"
    # A rented GPU at half an H100's throughput takes twice as long, as spec hours do.
    slow = estimate_phase(spec, "full", Quote(host="4090", relative_speed=0.5), 0, config={})
    assert slow.hours == pytest.approx((2 * hours, 3 * hours))
    assert slow.basis.endswith("this host's GPU at 0.50 x that speed")


def test_without_work_a_config_or_a_gpu_the_spec_hours_stay() -> None:
    spec = _spec()
    assert spec_hours(spec, "full") == (150.0, 225.0)  # no config given
    assert spec_hours(_spec(work=None), "full", {}) == (150.0, 225.0)
    # The tiny profile runs on a CPU: its time is start-up and data, not FLOP.
    tiny = estimate_phase(spec, "tiny", Quote(host="local"), 0, config={})
    assert tiny.source == "spec" and tiny.basis == ""
    assert tiny.hours == pytest.approx((0.15, 0.225))


def test_a_measured_duration_wins_over_the_work() -> None:
    estimate = estimate_phase(_spec(), "full", Quote(host="h100"), 0, 0.25, config={})
    assert estimate.source == "measured" and estimate.hours == (0.25, pytest.approx(0.3))


def test_a_broken_work_estimator_names_its_phase() -> None:
    def broken(config: _Steps) -> TrainingWork:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(PhaseError, match=r"9\.9.*work estimate failed: ZeroDivisionError"):
        spec_hours(_spec(work=broken), "full", {})


def test_work_must_be_a_non_negative_number() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        TrainingWork(flop=-1.0)
