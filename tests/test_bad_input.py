"""Bad input through the real CLI: one line on stderr, a non-zero exit, and the store untouched.

Each test drives `voltx.cli.main` in this process against a store that already holds one added
artifact, so "the store is unchanged" compares real files. The phases come from plugin objects
registered for the length of a test.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from voltx import PhaseContext, PhaseSpec
from voltx.cli import main
from voltx.testing import phase_plugin, registered_plugin

STORE = "store"
PREFIX = "voltx: error: "


@attrs.frozen
class TrainConfig:
    batch_size: int = 4
    learning_rate: float = 1e-3


def write_outputs(ctx: PhaseContext) -> None:
    for folder in ctx.outputs.values():
        (folder / "out.txt").write_text(ctx.phase_id)


def spec(
    phase_id: str, requires: tuple[str, ...] = (), produces: tuple[str, ...] = ()
) -> PhaseSpec:
    return PhaseSpec(
        id=phase_id,
        name=phase_id,
        entry=write_outputs,
        requires=requires,
        produces=produces or (phase_id.replace(".", "_"),),
        config_class=TrainConfig,
    )


TRAIN = spec("bad.train", produces=("bad_model",))
READ = spec("bad.read", requires=("corpus", "words"), produces=("bad_counts",))


def store_files(root: Path) -> dict[str, bytes | None]:
    """Every path under the store (folders map to None), with the bytes of each file."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder holding a store with one committed artifact (`seed`)."""
    monkeypatch.chdir(tmp_path)
    # main() installs a SIGTERM handler for runs; give pytest its own back afterwards.
    previous = signal.getsignal(signal.SIGTERM)
    (tmp_path / "seed.txt").write_text("seed\n")
    assert main(["--store", STORE, "artifacts", "add", "seed", "seed.txt"]) == 0
    assert (tmp_path / STORE / "refs" / "seed.json").is_file()
    yield tmp_path
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def pipeline(project: Path) -> Iterator[None]:
    with registered_plugin(phase_plugin(TRAIN, READ), origin="bad-input-tests"):
        yield


def fail(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``voltx --store STORE ARGV`` expecting a clean failure; return the error's text."""
    before = store_files(Path(STORE))
    capsys.readouterr()
    code = main(["--store", STORE, *argv])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(PREFIX), lines[0]
    message = lines[0].removeprefix(PREFIX)
    assert message.strip()
    assert store_files(Path(STORE)) == before, "a failed command changed the store"
    return message


# -- targets and the phase graph -----------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "plan"])
def test_unknown_phase_id_suggests_the_nearest(
    pipeline: None, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    message = fail(capsys, command, "bad.trian")
    assert "'bad.trian'" in message
    assert "did you mean bad.train" in message


def test_a_typo_in_an_artifact_target_suggests_the_artifact(
    pipeline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "did you mean bad_model" in fail(capsys, "run", "bad_modle")


def test_a_cyclic_plugin_graph_lists_the_cycle(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cycle = phase_plugin(
        spec("cyc.a", requires=("cyc_b",), produces=("cyc_a",)),
        spec("cyc.b", requires=("cyc_a",), produces=("cyc_b",)),
    )
    with registered_plugin(cycle, origin="cycle-tests"):
        message = fail(capsys, "run", "cyc.a")
    assert "cycle" in message
    assert "cyc.a -> cyc.b -> cyc.a" in message


def test_two_producers_of_one_artifact_name_both_phases(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twins = phase_plugin(
        spec("twin.left", produces=("twin_out",)), spec("twin.right", produces=("twin_out",))
    )
    with registered_plugin(twins, origin="twin-tests"):
        message = fail(capsys, "run", "twin.left")
    assert "'twin_out'" in message
    assert "twin.left" in message
    assert "twin.right" in message


def test_a_duplicate_phase_id_from_two_plugins_names_both(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = phase_plugin(spec("dup.phase", produces=("dup_one",)))
    second = phase_plugin(spec("dup.phase", produces=("dup_two",)))
    with (
        registered_plugin(first, origin="voltx-dup-one"),
        registered_plugin(second, origin="voltx-dup-two"),
    ):
        message = fail(capsys, "run", "dup.phase")
    assert "duplicate phase id 'dup.phase'" in message
    assert "voltx-dup-one" in message
    assert "voltx-dup-two" in message


# -- the project file ------------------------------------------------------------------------


def test_a_malformed_project_file_names_the_file_and_line(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "voltx.toml"
    path.write_text('[project]\nbackend = "local"\nprofile = \n')
    message = fail(capsys, "run", "bad.train")
    assert str(path) in message
    assert "line 3" in message


def test_a_phase_table_for_no_phase_suggests_one(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "voltx.toml").write_text('[phases."bad.trian"]\nbatch_size = 8\n')
    message = fail(capsys, "run", "bad.train")
    assert "phases.bad.trian" in message
    assert "did you mean bad.train" in message


def test_a_wrong_type_in_the_project_file_names_the_key(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "voltx.toml").write_text('[phases."bad.train"]\nbatch_size = "big"\n')
    message = fail(capsys, "run", "bad.train")
    assert "bad.train.batch_size" in message
    assert "expected int" in message


def test_every_mistake_in_the_project_file_is_reported_in_one_run(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five mistakes across four tables, backends' settings included: one run names them all."""
    from voltx.errors import ConfigError
    from voltx.plugins import registry
    from voltx.project import load_project

    path = project / "voltx.toml"
    path.write_text(
        "[project]\n"
        'bakend = "local"\n'
        "[budget]\n"
        "dollars = 0\n"
        "[backends.ssh]\n"
        'host = "gpu-box"\n'
        "prot = 2222\n"
        "[backends.vast]\n"
        "max_dhp = 0.8\n"
        'min_cuda = "12.1"\n'
    )
    expected = [
        "project.bakend: unknown key; did you mean backend",
        "budget.dollars: expected a number above 0, got 0",
        "backends.ssh.prot: unknown key; did you mean port",
        "backends.vast.max_dhp: unknown key; did you mean max_dph",
        "backends.vast.min_cuda: expected float, got str '12.1'",
    ]
    message = fail(capsys, "run", "bad.train")
    assert message.startswith(f"{path}: 5 problems: ")
    for problem in expected:
        assert problem in message
    with pytest.raises(ConfigError) as error:
        load_project(path, registry())
    assert sorted(error.value.problems) == sorted(expected)


# -- --set overrides -------------------------------------------------------------------------


def test_an_unknown_set_key_suggests_the_nearest(
    pipeline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    message = fail(capsys, "run", "bad.train", "--set", "bad.train.batch_sise=16")
    assert "bad.train.batch_sise: unknown key" in message
    assert "did you mean batch_size" in message


def test_a_set_key_of_an_unknown_phase_suggests_the_phase(
    pipeline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    message = fail(capsys, "plan", "bad.train", "--set", "bad.trian.batch_size=16")
    assert "no phase 'bad.trian'" in message
    assert "did you mean bad.train" in message


@pytest.mark.parametrize(
    ("text", "got"), [("abc", "str 'abc'"), ("true", "bool"), ("1.5", "float")]
)
def test_a_wrong_value_type_names_the_key(
    pipeline: None, capsys: pytest.CaptureFixture[str], text: str, got: str
) -> None:
    message = fail(capsys, "run", "bad.train", "--set", f"bad.train.batch_size={text}")
    assert message.startswith("bad.train.batch_size: expected int")
    assert got in message


def test_every_bad_override_is_reported_at_once(
    pipeline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    message = fail(
        capsys,
        "run",
        "bad.train",
        "--set",
        "bad.train.batch_size=abc",
        "--set",
        "bad.train.learning_rat=0.1",
    )
    assert "2 problems" in message
    assert "bad.train.batch_size" in message
    assert "bad.train.learning_rat" in message


# -- source files ----------------------------------------------------------------------------


def test_a_missing_input_listed_in_the_project_file_names_the_path(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `corpus` exists and sorts first: it must not be added when `words` turns out missing.
    (project / "corpus.txt").write_text("some text\n")
    (project / "voltx.toml").write_text(
        '[inputs]\ncorpus = "corpus.txt"\nwords = "data/words.txt"\n'
    )
    message = fail(capsys, "run", "bad.read")
    assert "inputs.words" in message
    assert str(project.resolve() / "data" / "words.txt") in message


def test_a_requirement_nobody_makes_adds_no_listed_input(
    pipeline: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "corpus.txt").write_text("some text\n")
    (project / "voltx.toml").write_text('[inputs]\ncorpus = "corpus.txt"\n')
    message = fail(capsys, "run", "bad.read")
    assert "words (needed by bad.read)" in message
    assert "corpus" not in message


def test_adding_a_missing_file_names_the_path(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = project / "missing" / "path.txt"
    message = fail(capsys, "artifacts", "add", "data", str(missing))
    assert str(missing) in message


# -- artifact names --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "a\\b", "/etc/passwd", ".hidden"])
def test_an_artifact_name_that_could_escape_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    message = fail(capsys, "artifacts", "add", name, "seed.txt")
    assert message.startswith(f"invalid artifact name {name!r}")
    assert not (project / "evil").exists()


@pytest.mark.parametrize("action", ["show", "get"])
def test_reading_an_artifact_by_an_escaping_name_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    extra = ["out.txt"] if action == "get" else []
    message = fail(capsys, "artifacts", action, "../seed", *extra)
    assert message.startswith("invalid artifact name '../seed'")
    assert not (project / "out.txt").exists()


# -- --debug ---------------------------------------------------------------------------------


def test_debug_shows_the_traceback_then_the_error_line(
    pipeline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["--debug", "--store", STORE, "run", "bad.trian"])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback (most recent call last)" in err
    assert "UnknownPhaseError" in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith(PREFIX)
    assert "did you mean bad.train" in last
