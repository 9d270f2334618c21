"""Phase 3.2's calibrators and measures on synthetic pairs (numpy only, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from voltx_phases.hard_core.calibration import expected_calibration_error
from voltx_phases.hard_core.gamma_calibration import split_problems
from voltx_phases.hard_core.gamma_fitting import (
    FITTERS,
    binned_ece,
    brier_score,
    ece_noise_floor,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    log_loss,
    reliability,
)


def _miscalibrated(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences whose true pass probability is sigmoid(2 logit(c) - 1): overconfident."""
    generator = np.random.default_rng(seed)
    confidence = generator.beta(2, 2, count)
    logit = np.log(confidence) - np.log1p(-confidence)
    truth = 1 / (1 + np.exp(-(2 * logit - 1)))
    return confidence, (generator.random(count) < truth).astype(np.float64)


def test_isotonic_pools_adjacent_violators_and_averages_ties() -> None:
    curve = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4, 0.4]), np.array([0.0, 1.0, 0.0, 1.0, 0.0]))
    np.testing.assert_allclose(curve.apply(np.array([0.1, 0.2, 0.3, 0.4])), [0, 0.5, 0.5, 0.5])
    assert np.all(np.diff(curve.raw) > 0)
    flat = fit_isotonic(np.array([0.3, 0.3]), np.array([1.0, 0.0]))
    assert flat.apply(np.array([0.0, 0.3, 1.0])).tolist() == [0.5, 0.5, 0.5]


def test_isotonic_equals_the_brute_force_least_squares_fit() -> None:
    generator = np.random.default_rng(3)
    x = np.sort(generator.random(7))
    y = generator.random(7)
    fitted = fit_isotonic(x, y).apply(x)
    assert np.all(np.diff(fitted) >= -1e-12)
    # The PAV fit is the closest non-decreasing sequence; any monotone perturbation is worse.
    best = float(np.sum((fitted - y) ** 2))
    for _ in range(200):
        other = np.maximum.accumulate(fitted + generator.normal(0, 0.05, 7))
        assert float(np.sum((other - y) ** 2)) >= best - 1e-9


def test_reliability_with_coins_is_the_originals_ece() -> None:
    confidence, outcome = _miscalibrated(500, 0)
    for bins in (10, 15):
        assert binned_ece(confidence, outcome, bins) == pytest.approx(
            expected_calibration_error(confidence, outcome.astype(bool), bins), abs=1e-12
        )
    assert int(reliability(confidence, outcome, 10).counts.sum()) == 500


@pytest.mark.parametrize("method", sorted(FITTERS))
def test_every_calibrator_lowers_held_out_ece_log_loss_and_brier(method: str) -> None:
    raw, outcome = _miscalibrated(4000, 1)
    held_raw, held_outcome = _miscalibrated(4000, 2)
    curve = FITTERS[method](raw, outcome)
    calibrated = curve.apply(held_raw)
    assert binned_ece(calibrated, held_outcome, 10) < binned_ece(held_raw, held_outcome, 10)
    assert log_loss(calibrated, held_outcome) < log_loss(held_raw, held_outcome)
    assert brier_score(calibrated, held_outcome) < brier_score(held_raw, held_outcome)
    assert np.all(np.diff(curve.calibrated) >= 0) and curve.method == method


def test_platt_recovers_the_generating_slope_and_intercept() -> None:
    raw, outcome = _miscalibrated(20000, 4)
    curve = fit_platt(raw, outcome)
    c = np.array([0.2, 0.5, 0.8])
    logit = np.log(c) - np.log1p(-c)
    np.testing.assert_allclose(curve.apply(c), 1 / (1 + np.exp(-(2 * logit - 1))), atol=0.03)


def test_anti_correlated_confidence_gives_a_flat_curve() -> None:
    raw = np.linspace(0.05, 0.95, 200)
    outcome = (raw < 0.5).astype(np.float64)
    assert np.ptp(fit_platt(raw, outcome).calibrated) < 1e-6
    assert np.allclose(fit_temperature(raw, outcome).calibrated, 0.5)


def test_noise_floor_is_seeded_and_shrinks_with_more_pairs() -> None:
    small, _ = _miscalibrated(100, 5)
    large, _ = _miscalibrated(10000, 5)
    floor_small = ece_noise_floor(small, 10, 200, seed=7)
    assert floor_small == ece_noise_floor(small, 10, 200, seed=7)
    mean_small, p95_small = floor_small
    mean_large, _ = ece_noise_floor(large, 10, 50, seed=7)
    assert 0 < mean_large < mean_small <= p95_small
    # At n = 100 a perfect predictor's ECE is several points: a figure below it means nothing.
    assert 0.03 < mean_small < 0.15


def test_split_holds_problems_out_whole_and_deals_folds() -> None:
    split = split_problems(20, held_out=5, folds=3, seed=1)
    assert int(split.held_out.sum()) == 5
    assert set(split.fold[split.held_out].tolist()) == {-1}
    assert sorted(set(split.fold[~split.held_out].tolist())) == [0, 1, 2]
    assert int(split_problems(6, held_out=500, folds=5, seed=1).held_out.sum()) == 3


@pytest.mark.parametrize(
    ("count", "ten_bins", "fifteen_bins"), [(164, 0.079, 0.095), (1000, 0.032, 0.039)]
)
def test_noise_floor_matches_the_published_simulation(
    count: int, ten_bins: float, fifteen_bins: float
) -> None:
    # A perfectly calibrated predictor, p ~ Beta(1.2, 1.2): docs/phases.md, 3.2 quotes these.
    pool = np.random.default_rng(0).beta(1.2, 1.2, count)
    assert ece_noise_floor(pool, 10, 300, seed=1)[0] == pytest.approx(ten_bins, rel=0.1)
    assert ece_noise_floor(pool, 15, 300, seed=1)[0] == pytest.approx(fifteen_bins, rel=0.1)
