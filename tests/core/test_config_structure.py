"""voltx.config: strict structuring with every problem at once, and ``--set`` overrides."""

from __future__ import annotations

from pathlib import PurePosixPath

import attrs
import pytest

from voltx.config import canonical_json, merge, parse_overrides, parse_value, structure, unstructure
from voltx.errors import ConfigError


@attrs.frozen
class Optimizer:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    milestones: list[int] = attrs.field(factory=list)


@attrs.frozen
class Model:
    width: int = 64
    depth: int = 2


@attrs.frozen
class TrainConfig:
    batch_size: int = 8
    steps: int = 100
    run_name: str = "tiny"
    warmup: int | None = None
    compile: bool = False
    output: PurePosixPath = PurePosixPath("out")
    optimizer: Optimizer = Optimizer()
    model: Model = Model()


@attrs.frozen
class NeedsSeed:
    seed: int
    steps: int = 1


def problems_of(data: dict, cls: type = TrainConfig, path: str = "2.1") -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        structure(cls, data, path)
    return error.value.problems


# -- structure -------------------------------------------------------------------------------


def test_structure_builds_nested_configs():
    config = structure(
        TrainConfig,
        {
            "batch_size": 16,
            "compile": True,
            "warmup": 10,
            "output": "runs/a",
            "optimizer": {"lr": 3e-4, "betas": [0.8, 0.95], "milestones": [10, 20]},
            "model": {"width": 128},
        },
        "2.1",
    )
    assert config == TrainConfig(
        batch_size=16,
        compile=True,
        warmup=10,
        output=PurePosixPath("runs/a"),
        optimizer=Optimizer(lr=3e-4, betas=(0.8, 0.95), milestones=[10, 20]),
        model=Model(width=128),
    )


def test_empty_table_gives_the_defaults():
    assert structure(TrainConfig, {}, "2.1") == TrainConfig()


def test_every_problem_is_reported_at_once_with_its_path():
    problems = problems_of(
        {
            "batch_sise": 16,
            "steps": "10",
            "compile": "yes",
            "optimizer": {"lr": "fast", "momentum": 0.9, "milestones": [1, "2"]},
            "model": {"width": True, "depth": 2.5},
        }
    )

    assert len(problems) == 8, problems
    text = "\n".join(problems)
    assert "2.1.batch_sise: unknown key; did you mean batch_size" in text
    assert "2.1.steps: expected int, got str '10'" in text
    assert "2.1.compile: expected bool, got str 'yes'" in text
    assert "2.1.optimizer.lr: expected float, got str 'fast'" in text
    assert "2.1.optimizer.momentum: unknown key" in text
    assert "2.1.optimizer.milestones[1]: expected int, got str '2'" in text
    assert "2.1.model.width: expected int, got bool True" in text
    assert "2.1.model.depth: expected int, got float 2.5" in text


def test_the_error_message_lists_every_problem():
    with pytest.raises(ConfigError) as error:
        structure(TrainConfig, {"stepz": 1, "batch_size": "x"}, "2.1")
    message = str(error.value)
    assert message.startswith("2 problems: ")
    assert "2.1.stepz" in message
    assert "2.1.batch_size" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"batch_size": "16"}, "2.1.batch_size: expected int, got str '16'"),
        ({"batch_size": True}, "2.1.batch_size: expected int, got bool True"),
        ({"batch_size": 16.0}, "2.1.batch_size: expected int, got float 16.0"),
        ({"optimizer": {"lr": False}}, "2.1.optimizer.lr: expected float, got bool False"),
        ({"run_name": 3}, "2.1.run_name: expected str, got int 3"),
        ({"warmup": "3"}, "2.1.warmup: expected int, got str '3'"),
        ({"output": 5}, "2.1.output: expected str, got int 5"),
        ({"optimizer": {"betas": ["a", 0.9]}}, "2.1.optimizer.betas[0]: expected float"),
        ({"model": 3}, "2.1.model: expected a table, got int 3"),
    ],
)
def test_wrong_types_are_refused(data, expected):
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_int_is_accepted_for_float():
    config = structure(TrainConfig, {"optimizer": {"lr": 1, "betas": [1, 0]}}, "x")
    assert config.optimizer.lr == 1.0
    assert isinstance(config.optimizer.lr, float)
    assert config.optimizer.betas == (1.0, 0.0)
    assert all(isinstance(b, float) for b in config.optimizer.betas)


def test_optional_accepts_none():
    assert structure(TrainConfig, {"warmup": None}, "x").warmup is None


def test_a_missing_required_key_is_named():
    assert problems_of({"steps": 2}, NeedsSeed, "3") == ("3.seed: required key is missing",)
    assert problems_of({"sed": 2}, NeedsSeed, "3") == (
        "3.sed: unknown key; did you mean seed",
        "3.seed: required key is missing",
    )


def test_unstructure_round_trips():
    config = TrainConfig(optimizer=Optimizer(betas=(0.5, 0.6)), output=PurePosixPath("a/b"))
    data = unstructure(config)
    assert data["output"] == "a/b"
    assert data["optimizer"]["betas"] == (0.5, 0.6)
    assert structure(TrainConfig, data, "x") == config


def test_canonical_json_is_stable_and_compact():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})


def test_merge_is_deep_and_the_override_wins():
    base = {"a": 1, "opt": {"lr": 1.0, "betas": [0.9]}}
    assert merge(base, {"opt": {"lr": 2.0}, "b": 3}) == {
        "a": 1,
        "opt": {"lr": 2.0, "betas": [0.9]},
        "b": 3,
    }
    assert base == {"a": 1, "opt": {"lr": 1.0, "betas": [0.9]}}  # untouched


# -- parse_value and parse_overrides ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16", 16),
        ("-3", -3),
        ("1e-4", 1e-4),
        ("0.5", 0.5),
        ("true", True),
        ("false", False),
        ("[1,2]", [1, 2]),
        ('["a", "b"]', ["a", "b"]),
        ('"quoted words"', "quoted words"),
        ("'single'", "single"),
        ("{width = 3}", {"width": 3}),
        ("adamw", "adamw"),
        ("runs/out", "runs/out"),
        ("hello world", "hello world"),
        ("", ""),
        ("2024-01-01", "2024-01-01"),
        ("12:30:00", "12:30:00"),
    ],
)
def test_parse_value(text, value):
    parsed = parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


def test_dotted_phase_ids_take_the_longest_match():
    tables = parse_overrides(["2.1.batch_size=16", "2.steps=5"], ["2", "2.1"])
    assert tables == {"2.1": {"batch_size": 16}, "2": {"steps": 5}}


def test_nested_keys_build_nested_tables():
    tables = parse_overrides(
        ["2.1.optimizer.lr=1e-4", "2.1.optimizer.betas=[0.8, 0.9]", "2.1.model.width = 32"],
        ["2.1"],
    )
    assert tables == {
        "2.1": {"optimizer": {"lr": 1e-4, "betas": [0.8, 0.9]}, "model": {"width": 32}}
    }


def test_values_are_toml_or_text():
    tables = parse_overrides(
        ["p.a=16", "p.b=1e-4", "p.c=true", "p.d=[1,2]", "p.e=adamw", "p.f=x=y"], ["p"]
    )
    assert tables == {"p": {"a": 16, "b": 1e-4, "c": True, "d": [1, 2], "e": "adamw", "f": "x=y"}}


def test_a_mapping_of_overrides_keeps_its_values():
    tables = parse_overrides({"2.1.batch_size": 16, "2.1.model.width": "32"}, ["2.1"])
    assert tables == {"2.1": {"batch_size": 16, "model": {"width": "32"}}}


def test_later_assignments_win():
    assert parse_overrides(["p.a=1", "p.a=2"], ["p"]) == {"p": {"a": 2}}


def test_a_single_string_is_one_assignment():
    assert parse_overrides("p.a=1", ["p"]) == {"p": {"a": 1}}


@pytest.mark.parametrize("assignment", ["batch_size", "=16", " =16", "2.1.batch_size"])
def test_malformed_assignment(assignment):
    with pytest.raises(ConfigError, match=r"expected PHASE\.KEY=VALUE"):
        parse_overrides([assignment], ["2.1"])


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("2.1=16", "2.1: name a key of phase 2.1"),
        ("2.1.=16", "2.1.: empty key name"),
        ("2.1.model..width=3", "2.1.model..width: empty key name"),
    ],
)
def test_assignment_without_a_key(assignment, expected):
    with pytest.raises(ConfigError) as error:
        parse_overrides([assignment], ["2", "2.1"])
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(expected)


def test_unknown_phase_suggests_the_closest():
    with pytest.raises(ConfigError) as error:
        parse_overrides(["2.2.batch_size=16", "transltor.lr=1"], ["2.1", "translator"])
    assert error.value.problems == (
        "2.2.batch_size: no phase '2.2'; did you mean 2.1",
        "transltor.lr: no phase 'transltor'; did you mean translator",
    )


def test_no_overrides_is_no_tables():
    assert parse_overrides([], ["2.1"]) == {}


@attrs.frozen
class WithSecret:
    api_key: str | None = None


def test_a_secret_value_is_never_quoted_in_a_problem():
    problems = problems_of({"api_key": ["hunter2-hunter2"]}, WithSecret, "backends.x")
    assert problems == ("backends.x.api_key: not a valid value (not shown: it is a secret)",)
