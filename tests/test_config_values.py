"""Config values are checked where they are declared: a bad value or an unknown profile is
refused while the run is planned, with its key path, before any job starts or the store changes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import attrs
import pytest

import voltx
from voltx.cli import main
from voltx.config_ranges import UncheckedConfigWarning, unchecked_numeric_fields
from voltx.errors import ConfigError
from voltx.plugins import host
from voltx.testing import phase_plugin, registered_plugin

pytest.importorskip("voltx_phases")

PREFIX = "voltx: error: "


def _store_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (the built-in demo) whose store already holds one artifact."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"content": "x = 1"}\n')
    assert main(["artifacts", "add", "raw_stack", str(corpus)]) == 0
    return tmp_path


REJECTED = [
    ("2.0.batch_size=-5", "2.0.batch_size: must be > 0, got -5"),
    ("2.0.batch_size=0", "2.0.batch_size: must be > 0, got 0"),
    ("2.1.checkpoint_every_steps=0", "2.1.checkpoint_every_steps: must be > 0, got 0"),
]


@pytest.mark.parametrize(("assignment", "message"), REJECTED)
def test_bad_value_is_refused_by_plan_and_run_before_any_job(
    project: Path, assignment: str, message: str
) -> None:
    store = project / ".voltx"
    before = _store_files(store)
    with pytest.raises(ConfigError) as planned:
        voltx.plan("2.1", overrides=[assignment])
    assert str(planned.value) == message
    with pytest.raises(ConfigError) as ran:
        voltx.run("2.1", overrides=[assignment])
    assert str(ran.value) == message
    assert _store_files(store) == before  # no ledger, no job, no checkpoint


@pytest.mark.parametrize(("assignment", "message"), REJECTED)
def test_bad_value_is_one_line_from_the_cli(
    project: Path, assignment: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _store_files(project / ".voltx")
    assert main(["run", "2.1", "--set", assignment]) != 0
    err = capsys.readouterr().err
    assert err == f"{PREFIX}{message}\n"
    assert _store_files(project / ".voltx") == before


def test_every_bad_value_is_reported_at_once(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        voltx.plan(
            "2.1",
            overrides={
                "2.0.batch_size": -5,
                "2.1.checkpoint_every_steps": 0,
                "2.1.validation_fraction": 1.5,
                "0.2.corpus_min_bytes": 900,
                "0.2.corpus_max_bytes": 100,
            },
        )
    assert set(caught.value.problems) == {
        "2.0.batch_size: must be > 0, got -5",
        "2.1.checkpoint_every_steps: must be > 0, got 0",
        "2.1.validation_fraction: must be at most 0.9, got 1.5",
        "0.2.corpus_max_bytes: must be at least corpus_min_bytes (900), got 100",
    }


def test_unknown_keys_and_bad_values_are_reported_together_with_nested_paths(
    project: Path,
) -> None:
    stage = {"name": "s", "datasets": ["mbpp"], "output": "x", "lr": -1.0, "warmup_steps": 0}
    with pytest.raises(ConfigError) as caught:
        voltx.plan(
            "2.1",
            overrides={"2.1.lr_typo": 1, "2.1.rar_dt": float("nan"), "2.1.stages": [stage]},
        )
    assert set(caught.value.problems) == {
        "2.1.lr_typo: unknown key",
        "2.1.rar_dt: must be > 0, got nan",
        "2.1.stages[0].lr: must be > 0, got -1.0",
    }


def test_a_warmup_longer_than_the_run_is_refused(project: Path) -> None:
    # Tiny 1.1 and 1.2: 3 epochs of at most ceil(200 / 8) = 25 batches, so 75 steps at most.
    voltx.plan("1.2", overrides={"1.1.warmup_steps": 75, "1.2.warmup_steps": 75})
    with pytest.raises(ConfigError) as caught:
        voltx.plan("1.2", overrides={"1.1.warmup_steps": 90, "1.2.warmup_steps": 90})
    assert set(caught.value.problems) == {
        f"1.{phase}.warmup_steps: must be at most the run's most steps (epochs x "
        f"ceil({cap} / batch_size) = 75), got 90"
        for phase, cap in ((1, "max_pairs"), (2, "max_samples"))
    }


def test_a_bad_value_in_voltx_toml_is_refused(project: Path) -> None:
    (project / "voltx.toml").write_text('[phases."1.1"]\nepochs = 0\nlr = -1.0\n')
    with pytest.raises(ConfigError) as caught:
        voltx.plan("1.1")
    assert set(caught.value.problems) == {
        "1.1.epochs: must be > 0, got 0",
        "1.1.lr: must be > 0, got -1.0",
    }


def test_unknown_profile_is_refused_with_a_suggestion(project: Path) -> None:
    before = _store_files(project / ".voltx")
    with pytest.raises(ConfigError) as caught:
        voltx.plan("2.1", profile="tnyi")
    assert "unknown profile 'tnyi' for phase" in str(caught.value)
    assert str(caught.value).endswith("; did you mean tiny")
    with pytest.raises(ConfigError):
        voltx.run("2.1", profile="tnyi")
    assert _store_files(project / ".voltx") == before


def test_unknown_profile_from_the_cli(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "2.1", "--profile", "tnyi"]) != 0
    err = capsys.readouterr().err
    assert err.startswith(f"{PREFIX}unknown profile 'tnyi' for phase ")
    assert err.endswith("; did you mean tiny\n") and err.count("\n") == 1


def test_every_registered_voltx_phase_declares_its_ranges() -> None:
    from voltx_phases.plugin import PHASES

    assert PHASES
    unchecked = {
        spec.id: unchecked_numeric_fields(spec.config_class)
        for spec in PHASES
        if unchecked_numeric_fields(spec.config_class)
    }
    assert unchecked == {}


@attrs.frozen
class Inner:
    rate: float = 0.1
    name: str = ""


@attrs.frozen
class Outer:
    steps: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    one: Inner = Inner()
    many: tuple[Inner, ...] = ()
    flag: bool = False


def test_the_check_walks_nested_configs() -> None:
    assert unchecked_numeric_fields(Outer) == ["one.rate", "many.rate"]


def test_a_class_defined_in_a_function_is_walked_too() -> None:
    @attrs.frozen
    class Local:
        steps: int = 3
        name: str = ""

    assert unchecked_numeric_fields(Local) == ["steps"]


@attrs.frozen
class _LooseConfig:
    steps: int = 3


def test_a_third_party_phase_without_ranges_loads_with_a_warning() -> None:
    spec = voltx.PhaseSpec(
        id="loose.phase",
        name="loose",
        entry=lambda ctx: None,
        produces=("loose_out",),
        config_class=_LooseConfig,
    )
    with (
        registered_plugin(phase_plugin(spec), origin="loose-plugin"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        assert host().registry().phase("loose.phase") is spec
    messages = [str(w.message) for w in caught if w.category is UncheckedConfigWarning]
    assert len(messages) == 1
    assert "'loose-plugin'" in messages[0] and "loose.phase.steps" in messages[0]
