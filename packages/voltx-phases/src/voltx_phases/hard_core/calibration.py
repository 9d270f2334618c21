"""Expected calibration error, as the original computes it (`docs/phases.md`, "Hard core").

    ece = expected_calibration_error(gammas, passed)            # 10 bins, the original's
    ece15 = expected_calibration_error(gammas, passed, bins=15)

Equal-width bins over gamma clamped to [0, 1]: bin = floor(bins * gamma), capped at bins - 1 so
gamma = 1 lands in the last bin. ECE = sum over the non-empty bins b of
(n_b / N) |accuracy_b - mean gamma_b|, accuracy being the fraction of correct samples.
"""

from __future__ import annotations

import numpy as np

ORIGINAL_ECE_BINS = 10


def calibration_bins(gammas: np.ndarray, bins: int = ORIGINAL_ECE_BINS) -> np.ndarray:
    """Each gamma's bin index. The product is taken in float32, as the original's f32 gamma is,
    so a gamma such as 0.7 falls in the bin the original puts it in (float32 0.7 x 10 rounds
    to 7.0, where the same product in float64 is 6.9999998)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    clamped = np.clip(np.asarray(gammas, dtype=np.float32), np.float32(0.0), np.float32(1.0))
    scaled = clamped * np.float32(bins)
    index: np.ndarray = np.minimum(np.floor(scaled).astype(np.int64), bins - 1)
    return index


def expected_calibration_error(
    gammas: np.ndarray, correct: np.ndarray, bins: int = ORIGINAL_ECE_BINS
) -> float:
    """ECE of confidences `gammas` [N] against outcomes `correct` [N] (bool); 0.0 when N = 0."""
    confidence = np.clip(np.asarray(gammas, dtype=np.float32), 0.0, 1.0).astype(np.float64)
    outcome = np.asarray(correct, dtype=bool)
    if confidence.shape != outcome.shape or confidence.ndim != 1:
        raise ValueError(
            f"gammas and correct must be two [N] arrays, got {confidence.shape}, {outcome.shape}"
        )
    total = confidence.shape[0]
    if total == 0:
        return 0.0
    index = calibration_bins(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    confidence_sums = np.bincount(index, weights=confidence, minlength=bins)
    correct_sums = np.bincount(index, weights=outcome.astype(np.float64), minlength=bins)
    filled = counts > 0
    gaps = np.abs(correct_sums[filled] / counts[filled] - confidence_sums[filled] / counts[filled])
    return float(np.sum(counts[filled] / total * gaps))
