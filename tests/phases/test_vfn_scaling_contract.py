"""Phase 5.1 against the phase contract every phase passes (voltx.testing.PhaseContract), run as
the scheduler runs it here: two gloo ranks when the machine has two cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from voltx.spec import PhaseSpec
from voltx.testing.phase_contract import PhaseContract

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class TestVfnScaling(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        pytest.importorskip("torch")
        from voltx_phases.scale.specs import VFN_SCALING

        return VFN_SCALING

    @pytest.fixture
    def phase_inputs(self, tmp_path: Path) -> dict[str, Path]:
        from _frames import write_problem_frames
        from _scaling import write_vfn_sleep

        return {
            "vfn_sleep": write_vfn_sleep(tmp_path / "vfn_sleep"),
            "problem_frames": write_problem_frames(tmp_path / "frames", problems=24),
        }
