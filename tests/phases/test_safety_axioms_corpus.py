"""The labelled set of phase 3.3: templated attacks for every axiom, benign solutions, and a
train / held-out split by source; plus the training pieces that do not need a model."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from voltx_phases.hard_core.safety_attacks import TEMPLATES
from voltx_phases.hard_core.safety_corpus import (
    LabelledProgram,
    adversarial_programs,
    benign_programs,
    split_by_source,
)
from voltx_phases.hard_core.safety_file import expected_names
from voltx_phases.hard_core.safety_training import constrained_thresholds, error_rates


def test_every_axiom_has_ten_templates_whose_programs_are_valid_python() -> None:
    assert Counter(t.axiom for t in TEMPLATES) == dict.fromkeys(expected_names(), 10)
    programs = adversarial_programs(per_axiom=60, seed=0)
    assert Counter(p.axiom for p in programs) == dict.fromkeys(expected_names(), 60)
    assert len({p.code for p in programs}) == len(programs)
    for program in programs:
        ast.parse(program.code)  # parsed as data, never compiled to run


def test_the_plan_sized_set_has_1500_distinct_attacks_over_every_template() -> None:
    programs = adversarial_programs(per_axiom=300, seed=0)
    assert len(programs) == 1500 and len({p.code for p in programs}) == 1500
    assert {p.source for p in programs} == {t.key for t in TEMPLATES}


def test_programs_are_seeded() -> None:
    assert adversarial_programs(12, seed=3) == adversarial_programs(12, seed=3)
    assert adversarial_programs(12, seed=3) != adversarial_programs(12, seed=4)


def test_benign_programs_are_distinct_non_empty_solutions(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "query": "q", "solution": "def f():\n    return 1\n", "tests": ["a"]},
        {"id": "2", "query": "q", "solution": "  ", "tests": ["a"]},
    ]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second.write_text(json.dumps(rows[0]) + "\n")  # the combined set repeats a benchmark
    programs = benign_programs({"humaneval": first, "code_training_combined": second})
    assert programs == [LabelledProgram("def f():\n    return 1", None, "humaneval/1")]


def test_the_split_keeps_every_source_on_one_side() -> None:
    benign = [LabelledProgram(f"x = {i}", None, f"mbpp/{i}") for i in range(40)]
    programs = benign + adversarial_programs(per_axiom=40, seed=0)
    train, held_out = split_by_source(programs, held_out_fraction=0.25, seed=0)
    assert len(train) + len(held_out) == len(programs)
    assert not {p.source for p in train} & {p.source for p in held_out}
    for axiom in expected_names():
        held = {p.source for p in held_out if p.axiom == axiom}
        assert len(held) == 2 or len(held) == 3  # a quarter of ten templates, rounded
    assert sum(p.benign for p in held_out) == 10
    assert split_by_source(programs, 0.25, seed=0) == (train, held_out)


def test_thresholds_sit_strictly_above_every_training_benign_score() -> None:
    scores = np.array([[0.31, -np.inf, 0.2, 0.1, 0.5], [0.30000001, -np.inf, 0.25, 0.1, 0.4]])
    thresholds = constrained_thresholds(scores, [0.7] * 5, margin_sd=0.0)
    assert all(float(np.float32(t)) == t for t in thresholds)  # exactly what the file stores
    for k in (0, 2, 3, 4):
        assert thresholds[k] >= scores[:, k].max()  # the monitor is strict: none is flagged
    assert thresholds[1] == pytest.approx(0.7)  # no benign frame with a slot: the constant
    # The margin is in standard deviations of the benign scores: 0.05 for K5 here.
    assert constrained_thresholds(scores, [0.7] * 5, margin_sd=2.0)[4] == pytest.approx(0.6)


def test_error_rates_per_axiom_and_overall() -> None:
    programs = [
        LabelledProgram("a", "K1_harm", "t1"),
        LabelledProgram("b", "K1_harm", "t1"),
        LabelledProgram("c", "K3_privacy", "t2"),
        LabelledProgram("d", None, "p1"),
        LabelledProgram("e", None, "p2"),
    ]
    flagged = np.zeros((5, 5), dtype=bool)
    flagged[0, 0] = True  # one K1 attack caught by K1
    flagged[2, 0] = True  # the K3 attack caught, but by K1: overall caught, K3 missed
    flagged[3, 4] = True  # a benign program flagged by K5
    rates = error_rates(programs, flagged)
    assert rates["per_axiom"]["K1_harm"]["false_negative_rate"] == 0.5
    assert rates["per_axiom"]["K3_privacy"]["false_negative_rate"] == 1.0
    assert rates["per_axiom"]["K2_deception"]["false_negative_rate"] is None
    assert rates["per_axiom"]["K5_integrity"]["false_positive_rate"] == 0.5
    assert rates["attacks_caught"] == 2 and rates["false_negative_rate"] == pytest.approx(1 / 3)
    assert rates["benign_flagged"] == 1 and rates["false_positive_rate"] == 0.5
