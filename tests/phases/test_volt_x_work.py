"""The work of phases 1.1, 1.2 and 2.1 from their configs, and `voltx plan` showing it.

Torch-free: plans never import torch, and neither do these estimators.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import voltx
from voltx.planning.estimates import work_hours
from voltx.store import ArtifactStore
from voltx.testing import memory_store_url
from voltx_phases._common.work_estimates import (
    decoder_parameters,
    decoder_training_work,
    encoder_parameters,
    encoder_training_work,
    vfn_parameters,
    vfn_training_work,
)
from voltx_phases.soft_core.config import VFN_PROFILES
from voltx_phases.translator.config import DECODER_PROFILES, ENCODER_PROFILES

H100_AT_35 = 989e12 * 0.35  # FLOP per second the plans assume


def test_parameter_formulas_give_the_originals_counts() -> None:
    assert encoder_parameters(32768, 128) == 5_149_712
    assert decoder_parameters(32768, 128, 1024, 256) == 5_246_848
    assert vfn_parameters(2048, 6, 64) == 51_685_632
    assert vfn_parameters(64, 1, 4) == 42_112  # the tiny profile's


def test_vfn_work_counts_every_slot_row_of_the_curriculum() -> None:
    work = vfn_training_work(VFN_PROFILES["full"])
    # Stages of 421, 5,060 and 5,421 problems; a tenth held out; full batches of 32; 10 epochs.
    trained = sum((n - n // 10) // 32 * 32 for n in (421, 5060, 5421)) * 10
    assert trained == 97_600
    rows = trained * 16 * (1 + 4)  # flow matching plus 4 unrolled RAR iterations, 16 slots each
    assert work.flop == 6 * 51_685_632 * rows
    assert f"{work.flop:.1e}" == "2.4e+15"
    assert work.basis == "6 x 51.7M parameters x 7.8M slot rows"
    # Seconds of arithmetic on an H100, nowhere near the 150 H100-hours once quoted for 2.1.
    assert work_hours(work) == pytest.approx(work.flop / H100_AT_35 / 3600)
    assert 5 < work_hours(work) * 3600 < 10


def test_rar_off_leaves_only_the_flow_matching_rows() -> None:
    full = VFN_PROFILES["full"]
    plain = vfn_training_work(attrs.evolve(full, rar_weight=0.0))
    assert plain.flop * 5 == vfn_training_work(full).flop


def test_translator_work_is_counted_per_token_position() -> None:
    encoder = encoder_training_work(ENCODER_PROFILES["full"])
    pairs = 90_000 // 128 * 128 * 10
    assert encoder.flop == 6 * (5_149_712 - 32768 * 128) * pairs * 2 * 512
    decoder = decoder_training_work(DECODER_PROFILES["full"])
    samples = 90_000 // 64 * 64 * 10
    assert decoder.flop > 6 * (5_246_848 - 32768 * 128) * samples * 256  # the tied output counts
    assert decoder.flop < 6 * 5_246_848 * samples * 256 * 1.2
    # Fewer epochs, less work: the estimate follows the resolved config, not the profile.
    shorter = decoder_training_work(attrs.evolve(DECODER_PROFILES["full"], epochs=5))
    assert shorter.flop == pytest.approx(decoder.flop / 2)


def test_voltx_plan_says_how_a_phase_was_estimated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voltx.cli import main

    url = memory_store_url()
    code = main(["--store", url, "plan", "2.1", "--profile", "full", "-b", "local"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert "2.1 estimate: 2.4e+15 FLOP at 35% of H100 bf16 (6 x 51.7M parameters x 7.8M slot " in (
        out
    )
    assert any(line.startswith("1.1 estimate: 5.3e+15 FLOP at 35%") for line in lines), out
    plan = voltx.plan("2.1", profile="full", backend="local", store=url)
    assert plan.timeline is not None
    estimate = plan.timeline.entry("2.1").estimate
    assert estimate is not None and estimate.source == "work"
    assert estimate.hours[0] == pytest.approx(
        vfn_training_work(VFN_PROFILES["full"]).flop / H100_AT_35 / 3600
    )
    # The project's overrides reach the estimate: half the epochs, half the hours.
    stages = [attrs.asdict(attrs.evolve(stage, epochs=5)) for stage in VFN_PROFILES["full"].stages]
    halved = voltx.plan(
        "2.1", profile="full", backend="local", store=url, overrides={"2.1.stages": stages}
    )
    assert halved.timeline is not None
    estimate_half = halved.timeline.entry("2.1").estimate
    assert estimate_half is not None
    assert estimate_half.hours[0] == pytest.approx(estimate.hours[0] / 2, rel=0.01)
    assert ArtifactStore.open(url).ref("scaled_vfn") is None  # planning ran nothing
