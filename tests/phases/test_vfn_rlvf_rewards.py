"""Phase 4.2's reward table, row by row (docs/phases.md, 4.2), and its config checks."""

from __future__ import annotations

import pytest

from voltx_phases.alignment.rlvf_rewards import PLAN_TABLE, RewardRow, RewardTable, rlvf_reward


@pytest.mark.parametrize(
    ("passed", "total", "gamma", "vetoed", "row", "reward"),
    [
        # all tests pass and gamma > 0.7: +1.0 (0.7 itself counts as confident, as the code)
        (4, 4, 0.9, False, RewardRow.ALL_CONFIDENT, 1.0),
        (4, 4, 0.7, False, RewardRow.ALL_CONFIDENT, 1.0),
        # all pass and gamma < 0.7: +0.5
        (4, 4, 0.69, False, RewardRow.ALL_UNSURE, 0.5),
        (1, 1, 0.0, False, RewardRow.ALL_UNSURE, 0.5),
        # some pass: +0.1 x pass rate, whatever gamma
        (1, 4, 0.95, False, RewardRow.PARTIAL, 0.025),
        (3, 4, 0.1, False, RewardRow.PARTIAL, 0.075),
        # none pass and gamma < 0.3: +0.2 (0.3 itself counts as humble, as the code)
        (0, 4, 0.1, False, RewardRow.NONE_HUMBLE, 0.2),
        (0, 4, 0.3, False, RewardRow.NONE_HUMBLE, 0.2),
        # none pass and gamma > 0.7: -2.0
        (0, 4, 0.8, False, RewardRow.NONE_OVERCONFIDENT, -2.0),
        (0, 4, 0.7, False, RewardRow.NONE_OVERCONFIDENT, -2.0),
        # the gap the plan leaves: none pass, 0.3 < gamma < 0.7: the code's -0.5
        (0, 4, 0.5, False, RewardRow.NONE_GAP, -0.5),
        (0, 4, 0.31, False, RewardRow.NONE_GAP, -0.5),
        (0, 4, 0.69, False, RewardRow.NONE_GAP, -0.5),
        # a problem without tests passes nothing
        (0, 0, 0.5, False, RewardRow.NONE_GAP, -0.5),
        # the safety veto: -5.0, before anything else, even for a program that passes all
        (4, 4, 0.9, True, RewardRow.VETO, -5.0),
        (0, 4, 0.1, True, RewardRow.VETO, -5.0),
        (2, 4, 0.5, True, RewardRow.VETO, -5.0),
    ],
)
def test_each_row_of_the_table(
    passed: int, total: int, gamma: float, vetoed: bool, row: RewardRow, reward: float
) -> None:
    assert PLAN_TABLE.row(passed, total, gamma, vetoed) is row
    assert rlvf_reward(passed, total, gamma, vetoed) == pytest.approx(reward)


def test_every_row_is_reachable() -> None:
    cases = [
        (4, 4, 0.9, False),
        (4, 4, 0.5, False),
        (1, 4, 0.5, False),
        (0, 4, 0.1, False),
        (0, 4, 0.9, False),
        (0, 4, 0.5, False),
        (0, 4, 0.5, True),
    ]
    assert {PLAN_TABLE.row(*case) for case in cases} == set(RewardRow)


def test_a_custom_table_moves_thresholds_and_values() -> None:
    table = RewardTable(confident_gamma=0.8, humble_gamma=0.2, none_gap=-0.25)
    assert table.reward(0, 2, 0.75, False) == -0.25
    assert table.reward(2, 2, 0.75, False) == 0.5


def test_bad_tables_and_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="humble_gamma"):
        RewardTable(confident_gamma=0.5, humble_gamma=0.6)
    with pytest.raises(ValueError, match="at most 1"):
        RewardTable(confident_gamma=1.5)
    with pytest.raises(ValueError, match="at most 0"):
        RewardTable(veto=5.0)  # a penalty that rewards
    with pytest.raises(ValueError, match="passed must be in"):
        PLAN_TABLE.reward(5, 4, 0.5, False)


def test_profiles_build_and_count_datasets() -> None:
    from voltx_phases.alignment.rlvf_config import RLVF_PROFILES, RlvfConfig

    assert RLVF_PROFILES["full"].steps == 100_000 and RLVF_PROFILES["full"].batch_size == 8
    assert RLVF_PROFILES["full"].lr == 1e-5
    with pytest.raises(ValueError, match="problems_per_dataset has 1 counts for 2"):
        RlvfConfig(problems_per_dataset=(5,))
