"""pass@k: the unbiased estimator against exact combinatorics on a table of (n, c, k)."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from voltx_phases.scale.pass_at_k import SampleCounts, mean_pass_at_k, pass_at_k, pass_at_ks

# Edge cases (no pass, all pass, c = n - k + 1 where every draw holds a pass, k = n) and the
# benchmark's usual sizes (n = 200 with k = 1, 10, 100).
CASES = [
    (1, 0, 1),
    (1, 1, 1),
    (2, 1, 1),
    (2, 1, 2),
    (5, 0, 3),
    (5, 3, 3),
    (5, 2, 4),
    (10, 1, 1),
    (10, 1, 10),
    (10, 3, 5),
    (20, 7, 10),
    (50, 1, 10),
    (100, 37, 10),
    (200, 0, 100),
    (200, 1, 1),
    (200, 1, 100),
    (200, 13, 10),
    (200, 101, 100),
    (200, 100, 100),
    (200, 199, 100),
    (200, 200, 1),
]


def exact(n: int, c: int, k: int) -> Fraction:
    """1 - C(n-c, k) / C(n, k) in exact arithmetic (C(m, k) is 0 for m < k)."""
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize(("n", "c", "k"), CASES)
def test_pass_at_k_equals_the_exact_value(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(float(exact(n, c, k)), rel=1e-12, abs=1e-15)


def test_a_benchmark_is_the_mean_and_k_above_n_is_left_out() -> None:
    counts = [SampleCounts("a", 10, 0), SampleCounts("b", 10, 5), SampleCounts("c", 10, 10)]
    expected = (exact(10, 0, 5) + exact(10, 5, 5) + exact(10, 10, 5)) / 3
    assert mean_pass_at_k(counts, 5) == pytest.approx(float(expected), rel=1e-12)
    assert mean_pass_at_k(counts, 11) is None
    assert mean_pass_at_k([], 1) is None
    scores = pass_at_ks(counts, (1, 10, 100))
    assert set(scores) == {"pass@1", "pass@10"}
    assert scores["pass@1"] == pytest.approx(0.5)
    assert scores["pass@10"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_impossible_counts_are_refused(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
