"""Phase 0.4: the constant code attention bias matches the original (`docs/phases.md`, 0.4)."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
bias_module = pytest.importorskip("voltx_phases.soft_core.code_attention_bias")


def test_values_match_the_original() -> None:
    bias = bias_module.code_attention_bias()
    assert bias.shape == (16, 16) and bias.dtype == np.float32
    assert np.array_equal(bias, bias.T)
    assert bias[0, 2] == bias[0, 3] == bias[1, 2] == 2.0
    assert bias[0, 1] == bias[1, 3] == bias[1, 4] == 1.5
    assert bias[4, 8] == bias[1, 5] == 1.0
    assert bias[6, 7] == bias[7, 8] == 0.5
    assert all(bias[i, i] == 0.5 for i in range(9))
    assert not bias[9:].any() and not bias[:, 9:].any()
    # 16 listed pairs, each twice, plus 9 diagonal entries.
    assert np.count_nonzero(bias) == 16 * 2 + 9
