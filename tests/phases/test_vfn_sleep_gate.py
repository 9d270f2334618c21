"""Phase 4.3's forgetting gate and consolidation batches, without a store."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from voltx_phases.alignment.consolidation import (  # noqa: E402
    consolidation_step,
    forgetting_gate,
    mixed_batch,
)
from voltx_phases.alignment.sleep_config import SLEEP_PROFILES, SleepConfig  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.soft_core.pairs import PairSet  # noqa: E402


def test_gate_passes_within_the_limit_and_fails_beyond_it() -> None:
    assert forgetting_gate(0.40, 0.38, 0.03).passed  # -2 points: within 3
    assert forgetting_gate(0.40, 0.37, 0.03).passed  # exactly the limit
    assert forgetting_gate(0.40, 0.45, 0.03).passed  # better is always kept
    failed = forgetting_gate(0.40, 0.36, 0.03)
    assert not failed.passed
    assert "beyond the limit of 0.0300" in failed.describe()
    assert SLEEP_PROFILES["full"].max_old_drop == 0.03
    with pytest.raises(ValueError):
        SleepConfig(max_old_drop=-0.1)


def _pairs(count: int, value: float) -> PairSet:
    shared = torch.zeros((count, 16), dtype=torch.bool)
    shared[:, :3] = True
    return PairSet(
        torch.full((count, 16, 256), value), torch.full((count, 16, 256), -value), shared
    )


def test_batches_mix_rehearsal_with_verified_pairs() -> None:
    verified, rehearsal = _pairs(3, 1.0), _pairs(10, 2.0)
    batch = mixed_batch(verified, rehearsal, 8, 0.25, np.random.default_rng(0))
    firsts = batch.query[:, 0, 0].tolist()
    assert len(firsts) == 8 and firsts.count(1.0) == 6 and firsts.count(2.0) == 2
    # Nothing verified: the whole batch rehearses earlier data.
    only_old = mixed_batch(None, rehearsal, 8, 0.25, np.random.default_rng(0))
    assert only_old.query[:, 0, 0].tolist() == [2.0] * 8


def test_consolidation_fits_the_verified_pairs() -> None:
    torch.manual_seed(0)
    vfn = ScaledVFN(VfnShape(hidden_dim=32, num_blocks=1, time_freqs=4))
    optimizer = torch.optim.AdamW(vfn.parameters(), lr=1e-2)
    batch = mixed_batch(_pairs(4, 0.05), _pairs(4, 0.02), 8, 0.5, np.random.default_rng(1))
    losses = [
        consolidation_step(
            vfn, batch, optimizer, torch.Generator().manual_seed(s), torch.device("cpu")
        )
        for s in range(30)
    ]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
