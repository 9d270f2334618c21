"""Phase 3.2's choice of problems and its one-line refusals (no model, no sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voltx import PhaseError
from voltx_phases.hard_core.gamma_config import DatasetQuota, GammaCalibrationConfig
from voltx_phases.hard_core.gamma_pairs import load_problems


class _Context:
    """What `load_problems` reads of a PhaseContext: the datasets' folders."""

    phase_id = "3.2"

    def __init__(self, inputs: dict[str, Path]) -> None:
        self.inputs = inputs

    def input_file(self, name: str, pattern: str = "*") -> Path:
        return next(self.inputs[name].glob(pattern))


def _dataset(folder: Path, name: str, tests_per_problem: list[int]) -> Path:
    (folder / name).mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "id": f"{name}/{index}",
                "query": f"Return {index}",
                "solution": f"def f():\n    return {index}\n",
                "tests": [f"assert f() == {index}"] * count,
            }
        )
        for index, count in enumerate(tests_per_problem)
    ]
    (folder / name / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder / name


def _config(*quotas: DatasetQuota) -> GammaCalibrationConfig:
    return GammaCalibrationConfig(datasets=quotas)


def test_quotas_skip_then_limit_and_problems_without_tests_are_dropped(tmp_path: Path) -> None:
    context = _Context(
        {
            "humaneval": _dataset(tmp_path, "humaneval", [1, 0, 2, 1]),
            "mbpp": _dataset(tmp_path, "mbpp", [1, 1, 1, 1, 1]),
        }
    )
    config = _config(DatasetQuota("humaneval"), DatasetQuota("mbpp", limit=2, skip=1))
    problems = load_problems(context, config)  # type: ignore[arg-type]
    assert [p.id for p in problems] == [
        "humaneval/0",
        "humaneval/2",
        "humaneval/3",
        "mbpp/1",
        "mbpp/2",
    ]


@pytest.mark.parametrize(
    ("tests", "message"),
    [
        ([0, 0, 0], "no problems with tests in humaneval (3 problem(s) read"),
        ([1, 0, 1], "2 problem(s) with tests in humaneval; calibration needs at least 3"),
    ],
)
def test_too_few_problems_with_tests_is_one_line(
    tmp_path: Path, tests: list[int], message: str
) -> None:
    context = _Context({"humaneval": _dataset(tmp_path, "humaneval", tests)})
    with pytest.raises(PhaseError) as caught:
        load_problems(context, _config(DatasetQuota("humaneval")))  # type: ignore[arg-type]
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_dataset_missing_from_the_store_is_named(tmp_path: Path) -> None:
    context = _Context({"humaneval": _dataset(tmp_path, "humaneval", [1, 1, 1])})
    config = _config(DatasetQuota("humaneval"), DatasetQuota("apps_interview_train"))
    with pytest.raises(PhaseError, match="dataset 'apps_interview_train' is not in the store"):
        load_problems(context, config)  # type: ignore[arg-type]
