"""The unbiased pass@k estimator (docs/phases.md, 5.3).

With n samples of a problem of which c pass, the chance that at least one of k samples drawn
without replacement passes is 1 - C(n-c, k) / C(n, k). Computed as the product
1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the binomials (C(200, 100) overflows a
float). A benchmark's pass@k is the mean over its problems; k larger than a problem's n has no
unbiased estimate, so such a k is omitted rather than reported as something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that one of `k` of `n` samples passes, `c` of them passing."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every draw of k holds a passing sample
        return 1.0
    failing_only = 1.0
    for i in range(n - c + 1, n + 1):
        failing_only *= 1.0 - k / i
    return 1.0 - failing_only


@attrs.frozen
class SampleCounts:
    """How many samples of one problem were drawn and how many passed every test."""

    problem_id: str
    n: int
    c: int


def mean_pass_at_k(counts: Sequence[SampleCounts], k: int) -> float | None:
    """The benchmark's pass@k: the mean over problems; None when there are no problems or
    some problem has fewer than `k` samples (no unbiased estimate)."""
    if not counts or any(count.n < k for count in counts):
        return None
    return sum(pass_at_k(count.n, count.c, k) for count in counts) / len(counts)


def pass_at_ks(counts: Sequence[SampleCounts], ks: Iterable[int]) -> dict[str, float]:
    """``{"pass@1": ..., "pass@10": ...}`` for each k with an estimate (see `mean_pass_at_k`)."""
    found = {}
    for k in ks:
        value = mean_pass_at_k(counts, k)
        if value is not None:
            found[f"pass@{k}"] = value
    return found
