"""The reward table of phase 4.2, RLVF (`docs/phases.md`, 4.2): a pure function of a sample's
test outcome, its calibrated certainty gamma and the safety veto. Torch-free.

    reward = rlvf_reward(passed=3, total=4, gamma=0.82, vetoed=False)   # RewardRow.PARTIAL, 0.075

| row | when | reward |
|---|---|---|
| VETO | the refined safety axioms halt the program's frame | -5.0 |
| ALL_CONFIDENT | every test passes, gamma >= 0.7 | +1.0 |
| ALL_UNSURE | every test passes, gamma < 0.7 | +0.5 |
| PARTIAL | some tests pass | +0.1 * pass rate |
| NONE_HUMBLE | none pass, gamma <= 0.3 | +0.2 |
| NONE_OVERCONFIDENT | none pass, gamma >= 0.7 | -2.0 |
| NONE_GAP | none pass, 0.3 < gamma < 0.7 | -0.5 |

The plan writes "> 0.7" and "< 0.3"; the original's reward code compares with >= 0.7 and
<= 0.3, and its value for the band the plan leaves undefined (none pass, gamma between the two)
is -0.5: both are taken from the code, so a gamma of exactly 0.7 counts as confident. The veto
comes first: an unsafe program is never rewarded, whatever its tests say. A problem with no
tests passes nothing.
"""

from __future__ import annotations

import enum

import attrs

from voltx_phases._common.bounds import between, fraction

# Rewards for what went right are >= 0 and penalties <= 0, so a table cannot invert itself.
_GAIN = between(0.0, 100.0)
_PENALTY = between(-100.0, 0.0)


class RewardRow(enum.Enum):
    """Which row of the table a sample falls in (reports count them)."""

    VETO = "veto"
    ALL_CONFIDENT = "all_confident"
    ALL_UNSURE = "all_unsure"
    PARTIAL = "partial"
    NONE_HUMBLE = "none_humble"
    NONE_OVERCONFIDENT = "none_overconfident"
    NONE_GAP = "none_gap"


@attrs.frozen
class RewardTable:
    """The table's thresholds and values; the defaults are the plan's (and the code's gap)."""

    confident_gamma: float = attrs.field(default=0.7, validator=fraction())
    humble_gamma: float = attrs.field(default=0.3, validator=fraction())
    all_confident: float = attrs.field(default=1.0, validator=_GAIN)
    all_unsure: float = attrs.field(default=0.5, validator=_GAIN)
    partial_scale: float = attrs.field(default=0.1, validator=_GAIN)
    none_humble: float = attrs.field(default=0.2, validator=_GAIN)
    none_overconfident: float = attrs.field(default=-2.0, validator=_PENALTY)
    none_gap: float = attrs.field(default=-0.5, validator=_PENALTY)
    veto: float = attrs.field(default=-5.0, validator=_PENALTY)

    @humble_gamma.validator
    def _below_confident(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value >= self.confident_gamma:
            raise ValueError(
                f"humble_gamma ({value}) must be below confident_gamma ({self.confident_gamma})"
            )

    def row(self, passed: int, total: int, gamma: float, vetoed: bool) -> RewardRow:
        """The row a sample with `passed` of `total` tests and certainty `gamma` falls in."""
        if passed < 0 or passed > total:
            raise ValueError(f"passed must be in [0, {total}], got {passed}")
        if vetoed:
            return RewardRow.VETO
        if total > 0 and passed == total:
            return (
                RewardRow.ALL_CONFIDENT if gamma >= self.confident_gamma else RewardRow.ALL_UNSURE
            )
        if passed > 0:
            return RewardRow.PARTIAL
        if gamma <= self.humble_gamma:
            return RewardRow.NONE_HUMBLE
        if gamma >= self.confident_gamma:
            return RewardRow.NONE_OVERCONFIDENT
        return RewardRow.NONE_GAP

    def reward(self, passed: int, total: int, gamma: float, vetoed: bool) -> float:
        """The reward of one sample (see the module docstring for the table)."""
        row = self.row(passed, total, gamma, vetoed)
        if row is RewardRow.PARTIAL:
            return self.partial_scale * passed / total
        return {
            RewardRow.VETO: self.veto,
            RewardRow.ALL_CONFIDENT: self.all_confident,
            RewardRow.ALL_UNSURE: self.all_unsure,
            RewardRow.NONE_HUMBLE: self.none_humble,
            RewardRow.NONE_OVERCONFIDENT: self.none_overconfident,
            RewardRow.NONE_GAP: self.none_gap,
        }[row]


PLAN_TABLE = RewardTable()


def rlvf_reward(
    passed: int, total: int, gamma: float, vetoed: bool, table: RewardTable = PLAN_TABLE
) -> float:
    """The plan's reward of one sample: `passed` of `total` tests, calibrated certainty `gamma`,
    and whether the safety axioms vetoed its program."""
    return table.reward(passed, total, gamma, vetoed)
