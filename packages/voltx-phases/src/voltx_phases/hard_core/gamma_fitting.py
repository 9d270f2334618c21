"""The calibrators of phase 3.2 and the measures it reports them by (numpy only; `docs/phases.md`,
3.2).

    curve = fit_isotonic(raw, outcome)          # or fit_temperature / fit_platt
    calibrated = curve.apply(raw_held_out)
    log_loss(calibrated, outcome_held_out), brier_score(...), binned_ece(..., bins=10)

`outcome` is a sample's pass rate in [0, 1] (the fraction of its tests it passed): every fit and
measure takes soft labels, and with 0/1 outcomes they are the textbook ones. Every calibrator is
returned as a `GammaCurve`, tabulated on a grid, so the one chosen is written as it is applied.
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.calibration import calibration_bins
from voltx_phases.hard_core.gamma_curve import GammaCurve

# Probabilities are kept this far from 0 and 1 before a logarithm or a logit: raw confidences of
# exactly 0 are common (a sample whose prompt frame has no slot, or that ran out of tokens).
EPSILON = 1e-6
# The grid the parametric calibrators are tabulated on: uniform in raw confidence, where most
# samples lie, and uniform in logit, where a sigmoid bends near 0 and 1; linear interpolation
# between these points is within 1e-3 of the sigmoid.
_GRID = np.unique(
    np.concatenate([np.linspace(0.0, 1.0, 201), 1.0 / (1.0 + np.exp(-np.linspace(-14, 14, 281)))])
    .astype(np.float32)
    .astype(np.float64)
)


def _logit(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(values, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    result: np.ndarray = np.log(clipped) - np.log1p(-clipped)
    return result


def _sigmoid(values: np.ndarray) -> np.ndarray:
    result: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, dtype=np.float64)))
    return result


def log_loss(predicted: np.ndarray, outcome: np.ndarray) -> float:
    """Mean binary cross-entropy of `predicted` against soft `outcome`s (0.0 for no pair)."""
    p = np.clip(np.asarray(predicted, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    y = np.asarray(outcome, dtype=np.float64)
    if y.size == 0:
        return 0.0
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def brier_score(predicted: np.ndarray, outcome: np.ndarray) -> float:
    """Mean squared difference between `predicted` and `outcome` (0.0 for no pair)."""
    p = np.asarray(predicted, dtype=np.float64)
    if p.size == 0:
        return 0.0
    return float(np.mean((p - np.asarray(outcome, dtype=np.float64)) ** 2))


@attrs.frozen(eq=False)
class Reliability:
    """Per equal-width bin: how many pairs, their mean confidence and mean outcome (NaN when
    the bin is empty), binned as `calibration.calibration_bins` bins (the original's ECE)."""

    counts: np.ndarray
    mean_confidence: np.ndarray
    mean_outcome: np.ndarray

    @property
    def ece(self) -> float:
        """Sum over non-empty bins of (n_b / N) |mean outcome - mean confidence|."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.mean_outcome[filled] - self.mean_confidence[filled])
        return float(np.sum(self.counts[filled] / total * gaps))


def reliability(gammas: np.ndarray, outcome: np.ndarray, bins: int) -> Reliability:
    """The reliability table of `gammas` against `outcome`; with 0/1 outcomes its `ece` is
    `calibration.expected_calibration_error`."""
    confidence = np.clip(np.asarray(gammas, dtype=np.float32), 0.0, 1.0).astype(np.float64)
    target = np.asarray(outcome, dtype=np.float64)
    if confidence.shape != target.shape or confidence.ndim != 1:
        raise ValueError(f"gammas and outcome must be two [N] arrays, got {confidence.shape}")
    index = calibration_bins(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / counts
        mean_outcome = np.bincount(index, weights=target, minlength=bins) / counts
    return Reliability(counts, mean_confidence, mean_outcome)


def binned_ece(gammas: np.ndarray, outcome: np.ndarray, bins: int) -> float:
    return reliability(gammas, outcome, bins).ece


def ece_noise_floor(
    confidences: np.ndarray, bins: int, simulations: int, seed: int
) -> tuple[float, float]:
    """Mean and 95th percentile of the ECE of a perfectly calibrated predictor over as many pairs
    as `confidences` holds: each simulation redraws the confidences from their own distribution
    (with replacement) and each outcome as a coin that lands heads with that confidence.

    An ECE below this mean is indistinguishable from perfect calibration at this sample size.
    Coins are 0/1, noisier than pass rates over several tests (the floor is too high), and every
    pair is drawn independently where the samples of one problem are correlated (too low);
    docs/phases.md, 3.2.
    """
    pool = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    if pool.size == 0:
        return 0.0, 0.0
    generator = np.random.default_rng(seed)
    values = np.empty(simulations)
    for index in range(simulations):
        drawn = generator.choice(pool, size=pool.size, replace=True)
        coins = generator.random(pool.size) < drawn
        values[index] = binned_ece(drawn, coins.astype(np.float64), bins)
    return float(values.mean()), float(np.quantile(values, 0.95))


# -- calibrators ------------------------------------------------------------------------------


def _pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to `values` in weighted least squares."""
    means: list[float] = []
    totals: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        means.append(value)
        totals.append(weight)
        sizes.append(1)
        # Merge backwards while the last block violates monotonicity with the one before it.
        while len(means) > 1 and means[-2] > means[-1]:
            weight_sum = totals[-2] + totals[-1]
            merged = (means[-2] * totals[-2] + means[-1] * totals[-1]) / weight_sum
            means[-2:] = [merged]
            totals[-2:] = [weight_sum]
            sizes[-2:] = [sizes[-2] + sizes[-1]]
    return np.repeat(np.asarray(means), sizes)


def _grid_of_two(value: float, level: float) -> tuple[list[float], list[float]]:
    # One distinct confidence: the curve is flat at `level`, which needs two grid points.
    return [value, value + 1.0], [level, level]


def fit_isotonic(raw: np.ndarray, outcome: np.ndarray) -> GammaCurve:
    """Isotonic regression of outcome on raw confidence (pool adjacent violators), tabulated at
    the first and last distinct confidence of each constant block."""
    x = np.asarray(raw, dtype=np.float32).astype(np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if x.size == 0:
        raise ValueError("isotonic regression needs at least one pair")
    # Equal confidences form one point (their mean outcome, weighted by their count), so the
    # grid is strictly increasing and ties cannot be ordered by chance.
    distinct, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y)
    fitted = _pool_adjacent_violators(sums / counts, counts.astype(np.float64))
    if distinct.size == 1:
        grid, levels = _grid_of_two(float(distinct[0]), float(fitted[0]))
        return GammaCurve(raw=grid, calibrated=np.clip(levels, 0, 1), method="isotonic")
    change = np.flatnonzero(np.diff(fitted) != 0)
    keep = np.unique(np.concatenate([[0, distinct.size - 1], change, change + 1]))
    return GammaCurve(
        raw=distinct[keep],
        calibrated=np.maximum.accumulate(np.clip(fitted[keep], 0.0, 1.0)),
        method="isotonic",
    )


def _newton_logistic(
    features: np.ndarray, outcome: np.ndarray, iterations: int = 100
) -> np.ndarray:
    """Weights w minimising the soft-label log-loss of sigmoid(features @ w), by Newton's method
    with a tiny ridge (1e-6) so a separable or constant set still gives a finite answer."""
    weights = np.zeros(features.shape[1])
    ridge = 1e-6 * np.eye(features.shape[1])
    for _ in range(iterations):
        p = _sigmoid(features @ weights)
        gradient = features.T @ (p - outcome) / outcome.size + ridge @ weights
        curvature = features.T @ (features * (p * (1 - p))[:, None]) / outcome.size + ridge
        step = np.linalg.solve(curvature, gradient)
        weights -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return weights


def _tabulated(method: str, slope: float, intercept: float) -> GammaCurve:
    calibrated = _sigmoid(slope * _logit(_GRID) + intercept)
    # float32 can round two neighbouring values of an increasing sigmoid the wrong way.
    monotone = np.maximum.accumulate(calibrated.astype(np.float32))
    return GammaCurve(raw=_GRID, calibrated=monotone, method=method)


def fit_temperature(raw: np.ndarray, outcome: np.ndarray) -> GammaCurve:
    """Temperature scaling: sigmoid(logit(raw) / T), T > 0 fitted by log-loss. A negative fitted
    slope (confidence anti-correlated with passing) is not a temperature: it is flattened to
    T = infinity, a constant 0.5."""
    features = _logit(np.asarray(raw))[:, None]
    (slope,) = _newton_logistic(features, np.asarray(outcome, dtype=np.float64))
    return _tabulated("temperature", max(float(slope), 0.0), 0.0)


def fit_platt(raw: np.ndarray, outcome: np.ndarray) -> GammaCurve:
    """Platt scaling: sigmoid(a logit(raw) + b), fitted by log-loss. A curve must not decrease,
    so a negative slope is refitted as a = 0: the constant base rate."""
    logits = _logit(np.asarray(raw))
    target = np.asarray(outcome, dtype=np.float64)
    slope, intercept = _newton_logistic(np.stack([logits, np.ones_like(logits)], axis=1), target)
    if slope < 0:
        slope = 0.0
        (intercept,) = _newton_logistic(np.ones((target.size, 1)), target)
    return _tabulated("platt", float(slope), float(intercept))


FITTERS = {"isotonic": fit_isotonic, "temperature": fit_temperature, "platt": fit_platt}
