"""Plugin loading: broken, misspelled and clashing plugins are a `PluginError` naming their origin;
`VOLTX_LOAD_PLUGINS` limits what loads; observer hooks see a real run; every hook is documented.

Loading tests use a fresh `PluginHost` (or swap one in for the CLI) so the process-wide host, which
other tests rely on, is never disturbed. Installed distributions are faked with a ``dist-info``
folder on ``sys.path``, which is all `importlib.metadata` looks at.
"""

from __future__ import annotations

import importlib
import inspect
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

import voltx
import voltx.hookspecs
import voltx.plugins
from _support import REPO
from voltx import PhaseContext, PhaseSpec, PluginError
from voltx.cli import main
from voltx.plugins import PluginHost
from voltx.testing import InProcessBackend, memory_store_url, phase_plugin, registered_plugin

PLUGINS_DOC = REPO / "docs" / "plugins.md"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for fake distributions; modules imported from it are forgotten after."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("VOLTX_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("VOLTX_PLUGINS", raising=False)
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]


def fake_distribution(
    site: Path, name: str, entry_points: Mapping[str, str], modules: Mapping[str, str]
) -> None:
    """Install `name` 0.1 into `site`: its ``voltx`` entry points and its top-level modules."""
    # As a wheel names it: the project name with "_" for "-", so "-" separates the version.
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[voltx]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


def phase_module(phase_id: str) -> str:
    """Source of a plugin module registering one phase."""
    return f"""\
        import voltx

        def run(ctx):
            pass

        @voltx.hookimpl
        def register_phases(register):
            register(voltx.PhaseSpec(id={phase_id!r}, name="fake", entry=run, produces=("out",)))
        """


def spec(phase_id: str, produces: str = "", requires: tuple[str, ...] = ()) -> PhaseSpec:
    return PhaseSpec(
        id=phase_id,
        name=phase_id,
        entry=write_outputs,
        requires=requires,
        produces=(produces or phase_id.replace(".", "_"),),
    )


def write_outputs(ctx: PhaseContext) -> None:
    for folder in ctx.outputs.values():
        (folder / "out.txt").write_text(ctx.phase_id)


# -- a plugin that fails to import -----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("raise ImportError('needs the fakeplug-extras package')", "ImportError: needs the"),
        ("import fakeplug_dependency_that_is_not_installed", "ModuleNotFoundError"),
        ("def broken(:\n    pass\n", "SyntaxError"),
        ("raise RuntimeError('bad default config')", "RuntimeError: bad default config"),
    ],
)
def test_a_plugin_that_fails_to_import_names_its_distribution(
    site: Path, source: str, problem: str
) -> None:
    fake_distribution(site, "fakeplug", {"broken": "fakeplug_broken"}, {"fakeplug_broken": source})
    host = PluginHost()
    with pytest.raises(PluginError) as error:
        host.registry()
    assert error.value.distribution == "fakeplug"
    message = str(error.value)
    assert "plugin 'broken' from distribution 'fakeplug' failed to import" in message
    assert problem in message


def test_a_failed_load_fails_again_instead_of_running_without_the_plugin(site: Path) -> None:
    fake_distribution(
        site,
        "fakeplug",
        {"broken": "fakeplug_broken"},
        {"fakeplug_broken": "raise ImportError('needs the fakeplug-extras package')"},
    )
    host = PluginHost()
    for _ in range(2):
        with pytest.raises(PluginError, match="fakeplug"):
            host.registry()


def test_an_entry_point_naming_a_missing_attribute_names_its_distribution(site: Path) -> None:
    fake_distribution(
        site, "fakeplug", {"attr": "fakeplug_module:plugin"}, {"fakeplug_module": "x = 1\n"}
    )
    with pytest.raises(PluginError, match="AttributeError") as error:
        PluginHost().registry()
    assert error.value.distribution == "fakeplug"


def test_a_voltx_plugins_module_that_fails_to_import_is_named(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    monkeypatch.setenv("VOLTX_PLUGINS", "fakeplug_missing_module")
    with pytest.raises(PluginError, match="'fakeplug_missing_module'") as error:
        PluginHost().registry()
    assert error.value.distribution == "fakeplug_missing_module"


# -- misspelled hooks ------------------------------------------------------------------------


class MisspelledHook:
    @voltx.hookimpl
    def register_phase(self, register: Any) -> None:  # the hook is register_phases
        raise AssertionError("never called")


class UnknownArgument:
    @voltx.hookimpl
    def register_phases(self, register: Any, profile: str) -> None:
        raise AssertionError("never called")


@pytest.mark.parametrize(
    ("plugin", "problem"),
    [
        (MisspelledHook(), "unknown hook 'register_phase'"),
        (UnknownArgument(), "Argument(s) {'profile'} are declared in the hookimpl"),
    ],
)
def test_a_misspelled_hook_names_the_plugin(plugin: object, problem: str) -> None:
    host = PluginHost()
    with pytest.raises(PluginError) as error:
        host.add(plugin, "voltx-typo")
    assert error.value.distribution == "voltx-typo"
    assert "plugin from 'voltx-typo'" in str(error.value)
    assert problem in str(error.value)
    # The host is left as it was: the bad plugin is not half-registered.
    assert not host.manager.is_registered(plugin)
    host.add(phase_plugin(spec("typo.ok")), "voltx-fine")
    assert list(host.manager.hook.register_phases.get_hookimpls())


def test_a_misspelled_hook_in_an_installed_plugin_names_the_distribution(site: Path) -> None:
    source = """\
        import voltx

        @voltx.hookimpl
        def register_phase(register):
            pass
        """
    fake_distribution(site, "fakeplug", {"typo": "fakeplug_typo"}, {"fakeplug_typo": source})
    with pytest.raises(PluginError, match="unknown hook 'register_phase'") as error:
        PluginHost().registry()
    assert error.value.distribution == "fakeplug"


def test_a_hook_that_is_not_a_hookspec_but_marked_optional_is_allowed() -> None:
    class Optional:
        @voltx.hookimpl(optionalhook=True)
        def phase_retried(self, phase_id: str) -> None:
            pass

    PluginHost().add(Optional(), "voltx-optional")


# -- what plugins register -------------------------------------------------------------------


@pytest.fixture
def bare_host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A fresh host that loads no installed plugin."""
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    monkeypatch.delenv("VOLTX_PLUGINS", raising=False)
    return PluginHost()


def test_a_duplicate_phase_id_across_two_plugins_names_both(bare_host: PluginHost) -> None:
    bare_host.add(phase_plugin(spec("dup.phase", produces="one")), "voltx-first")
    bare_host.add(phase_plugin(spec("dup.phase", produces="two")), "voltx-second")
    with pytest.raises(PluginError) as error:
        bare_host.registry()
    message = str(error.value)
    assert "duplicate phase id 'dup.phase'" in message
    assert "'voltx-first'" in message
    assert "'voltx-second'" in message
    assert error.value.distribution in ("voltx-first", "voltx-second")


def test_a_duplicate_phase_id_in_two_installed_distributions_names_both(site: Path) -> None:
    fake_distribution(
        site, "fakeplug-one", {"one": "fakeplug_one"}, {"fakeplug_one": phase_module("dup.x")}
    )
    fake_distribution(
        site, "fakeplug-two", {"two": "fakeplug_two"}, {"fakeplug_two": phase_module("dup.x")}
    )
    with pytest.raises(PluginError) as error:
        PluginHost().registry()
    assert "'fakeplug-one'" in str(error.value)
    assert "'fakeplug-two'" in str(error.value)


class BackendPlugin:
    @voltx.hookimpl
    def register_backends(self, register: Any) -> None:
        register("twin", InProcessBackend)


def test_a_duplicate_backend_name_names_both(bare_host: PluginHost) -> None:
    bare_host.add(BackendPlugin(), "voltx-first")
    bare_host.add(BackendPlugin(), "voltx-second")
    with pytest.raises(PluginError, match="duplicate backend 'twin'") as error:
        bare_host.registry()
    assert "'voltx-first'" in str(error.value)
    assert "'voltx-second'" in str(error.value)


def test_an_unknown_backend_suggests_the_nearest(bare_host: PluginHost) -> None:
    bare_host.add(BackendPlugin(), "voltx-backends-test")
    with pytest.raises(PluginError, match="unknown backend 'twni'; did you mean twin"):
        bare_host.registry().backend("twni")


@attrs.frozen(kw_only=True)
class CountingSettings:
    cores: int = 1
    label: str = "counting"


class CountingBackend(InProcessBackend):
    name = "counting"

    def __init__(self, work_dir: Path | None = None, *, settings: CountingSettings) -> None:
        super().__init__(work_dir, cpu_cores=settings.cores)
        self.settings = settings


class SettingsPlugin:
    @voltx.hookimpl
    def register_backends(self, register: Any) -> None:
        register("counting", CountingBackend, settings=CountingSettings)


class NotAttrsSettingsPlugin:
    @voltx.hookimpl
    def register_backends(self, register: Any) -> None:
        register("loose", InProcessBackend, settings=dict)


def test_a_backend_gets_its_project_table_as_its_settings_class(
    bare_host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voltx.backend_factory import make_backend
    from voltx.errors import ConfigError
    from voltx.session import open_session

    monkeypatch.setattr(voltx.plugins, "_host", bare_host)
    bare_host.add(SettingsPlugin(), "voltx-settings")
    project = tmp_path / "voltx.toml"
    project.write_text('[backends.counting]\ncores = 3\nlabel = "mine"\n')
    session = open_session(config=str(project), store=memory_store_url())
    backend = make_backend(session, "counting")
    assert isinstance(backend, CountingBackend)
    assert backend.settings == CountingSettings(cores=3, label="mine")

    project.write_text('[backends.counting]\ncores = "3"\nlable = "mine"\n')
    with pytest.raises(ConfigError) as error:
        open_session(config=str(project), store=memory_store_url())
    assert error.value.problems == (
        "backends.counting.lable: unknown key; did you mean label",
        "backends.counting.cores: expected int, got str '3'",
    )


def test_a_settings_class_must_be_an_attrs_class(bare_host: PluginHost) -> None:
    bare_host.add(NotAttrsSettingsPlugin(), "voltx-loose")
    with pytest.raises(PluginError, match="not an attrs class") as error:
        bare_host.registry()
    assert error.value.distribution == "voltx-loose"


class RaisingPlugin:
    @voltx.hookimpl
    def register_phases(self, register: Any) -> None:
        raise KeyError("phases table")


class NotASpecPlugin:
    @voltx.hookimpl
    def register_phases(self, register: Any) -> None:
        register({"id": "dict.phase"})


class BadSpecPlugin:
    @voltx.hookimpl
    def register_phases(self, register: Any) -> None:
        register(PhaseSpec(id="bad id!", name="x", entry="x:run"))


@pytest.mark.parametrize(
    ("plugin", "problem"),
    [
        (RaisingPlugin(), "failed while registering: KeyError"),
        (NotASpecPlugin(), "not a PhaseSpec"),
        (BadSpecPlugin(), "phase id 'bad id!' must be"),
    ],
)
def test_a_plugin_failing_while_registering_is_named(
    bare_host: PluginHost, plugin: object, problem: str
) -> None:
    bare_host.add(plugin, "voltx-faulty")
    with pytest.raises(PluginError, match=re.escape(problem)) as error:
        bare_host.registry()
    assert error.value.distribution == "voltx-faulty"
    assert "'voltx-faulty'" in str(error.value)


# -- which plugins load ----------------------------------------------------------------------


@pytest.fixture
def two_entry_points(site: Path) -> Path:
    """A distribution with two plugins; `unwanted` cannot even be imported."""
    fake_distribution(
        site,
        "fakeplug",
        {"wanted": "fakeplug_wanted", "unwanted": "fakeplug_unwanted"},
        {
            "fakeplug_wanted": phase_module("fake.wanted"),
            "fakeplug_unwanted": "raise ImportError('this plugin must not load')",
        },
    )
    return site


def test_voltx_load_plugins_limits_what_loads(
    two_entry_points: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", " wanted ")
    registry = PluginHost().registry()
    assert list(registry.phases) == ["fake.wanted"]
    assert registry.phase_origin["fake.wanted"] == "fakeplug"
    # voltx's own phases and backends are plugins like any other: not named, not loaded.
    assert registry.backends == {}
    assert "fakeplug_unwanted" not in sys.modules


def test_without_voltx_load_plugins_every_entry_point_loads(two_entry_points: Path) -> None:
    with pytest.raises(PluginError, match="plugin 'unwanted' from distribution 'fakeplug'"):
        PluginHost().registry()


def test_an_empty_voltx_load_plugins_loads_none(
    two_entry_points: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    assert PluginHost().registry().phases == {}


def test_voltx_plugins_adds_modules_by_name(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "fakeplug_extra.py").write_text(textwrap.dedent(phase_module("fake.extra")))
    importlib.invalidate_caches()
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    monkeypatch.setenv("VOLTX_PLUGINS", "fakeplug_extra, ")
    registry = PluginHost().registry()
    assert registry.phase_origin == {"fake.extra": "fakeplug_extra"}


def test_plugins_load_on_first_use_not_when_the_host_is_made(two_entry_points: Path) -> None:
    host = PluginHost()
    assert "fakeplug_wanted" not in sys.modules
    with pytest.raises(PluginError):
        host.registry()


# -- the CLI names the plugin on one line ----------------------------------------------------


@pytest.fixture
def cli_host(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginHost]:
    """A fresh process-wide host for the CLI, in an empty project folder."""
    host = PluginHost()
    monkeypatch.setattr(voltx.plugins, "_host", host)
    monkeypatch.chdir(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)
    yield host
    signal.signal(signal.SIGTERM, previous)


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("voltx: error: ")
    return lines[0]


def test_the_cli_names_a_broken_distribution(
    cli_host: PluginHost, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_distribution(
        site,
        "fakeplug",
        {"broken": "fakeplug_broken"},
        {"fakeplug_broken": "raise ImportError('needs the fakeplug-extras package')"},
    )
    line = cli_error(capsys, "--store", "store", "plan", "all")
    assert "from distribution 'fakeplug' failed to import" in line
    assert "needs the fakeplug-extras package" in line


def test_the_cli_puts_a_multi_line_plugin_error_on_one_line(
    cli_host: PluginHost, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = """\
        import voltx

        @voltx.hookimpl
        def register_phases(register, profile):
            pass
        """
    fake_distribution(site, "fakeplug", {"args": "fakeplug_args"}, {"fakeplug_args": source})
    line = cli_error(capsys, "--store", "store", "phases")
    assert "plugin from 'fakeplug'" in line
    assert "Argument(s) {'profile'}" in line


# -- observer hooks --------------------------------------------------------------------------


class Observer:
    """Records every observer call, as a plugin would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _record(self, kind: str, **data: Any) -> None:
        with self._lock:
            self.calls.append((kind, data))

    @voltx.hookimpl
    def phase_started(self, run_id: str, phase_id: str, backend: str, attempt: int) -> None:
        self._record("started", run_id=run_id, phase_id=phase_id, backend=backend, attempt=attempt)

    @voltx.hookimpl
    def phase_finished(
        self,
        run_id: str,
        phase_id: str,
        status: str,
        outputs: Mapping[str, str],
        error: str | None,
    ) -> None:
        self._record(
            "finished",
            run_id=run_id,
            phase_id=phase_id,
            status=status,
            outputs=dict(outputs),
            error=error,
        )

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {data["phase_id"]: data for event, data in self.calls if event == kind}


def fail_on_purpose(ctx: PhaseContext) -> None:
    raise RuntimeError("deliberate failure for the observer test")


OBSERVED = (
    spec("obs.first", produces="obs_first"),
    spec("obs.second", produces="obs_second", requires=("obs_first",)),
    attrs.evolve(
        spec("obs.broken", produces="obs_broken", requires=("obs_first",)), entry=fail_on_purpose
    ),
    spec("obs.after", produces="obs_after", requires=("obs_broken",)),
)


@pytest.fixture
def observed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Observer]:
    monkeypatch.chdir(tmp_path)
    observer = Observer()
    with (
        registered_plugin(phase_plugin(*OBSERVED), origin="observer-tests"),
        registered_plugin(observer, origin="observer-tests-observer"),
    ):
        yield observer


def test_observer_hooks_see_every_phase_of_a_run(observed: Observer, tmp_path: Path) -> None:
    store = memory_store_url()
    backend = InProcessBackend(work_dir=tmp_path / "work")
    result = voltx.run("obs.second,obs.after", backend=backend, store=store)
    assert {pid: p.status for pid, p in result.phases.items()} == {
        "obs.first": "succeeded",
        "obs.second": "succeeded",
        "obs.broken": "failed",
        "obs.after": "blocked",
    }

    started = observed.of("started")
    assert set(started) == {"obs.first", "obs.second", "obs.broken"}
    for data in started.values():
        assert data["run_id"] == result.run_id
        assert data["backend"] == "inprocess"
        assert data["attempt"] == 1

    finished = observed.of("finished")
    assert {pid: d["status"] for pid, d in finished.items()} == {
        pid: p.status for pid, p in result.phases.items()
    }
    assert all(d["run_id"] == result.run_id for d in finished.values())
    assert finished["obs.first"]["outputs"] == dict(result.phases["obs.first"].outputs)
    assert set(finished["obs.first"]["outputs"]) == {"obs_first"}
    assert finished["obs.first"]["error"] is None
    assert finished["obs.after"]["error"] is None
    assert "deliberate failure for the observer test" in finished["obs.broken"]["error"]

    # Each phase's start comes before its end, and a phase nobody started still finishes once.
    order = [(event, data["phase_id"]) for event, data in observed.calls]
    for phase_id in started:
        assert order.index(("started", phase_id)) < order.index(("finished", phase_id))
    assert len([o for o in order if o[0] == "finished"]) == len(result.phases)

    observed.calls.clear()
    again = voltx.run("obs.second", backend=backend, store=store)
    assert observed.of("started") == {}
    skipped = observed.of("finished")
    assert {pid: d["status"] for pid, d in skipped.items()} == {
        "obs.first": "skipped",
        "obs.second": "skipped",
    }
    assert skipped["obs.second"]["run_id"] == again.run_id
    assert skipped["obs.second"]["outputs"] == dict(result.phases["obs.second"].outputs)


class FailingObserver:
    @voltx.hookimpl
    def phase_started(self, run_id: str, phase_id: str, backend: str, attempt: int) -> None:
        raise RuntimeError("observer bug")


def test_a_failing_observer_does_not_fail_the_run(observed: Observer, tmp_path: Path) -> None:
    with registered_plugin(FailingObserver(), origin="voltx-buggy-observer"):
        result = voltx.run(
            "obs.first",
            backend=InProcessBackend(work_dir=tmp_path / "work"),
            store=memory_store_url(),
        )
    assert result.phases["obs.first"].status == "succeeded"


# -- every hook is specified and documented --------------------------------------------------


def hookspecs() -> dict[str, Callable[..., Any]]:
    marker = f"{voltx.hookspecs.PROJECT_NAME}_spec"
    return {
        name: value
        for name, value in vars(voltx.hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, marker)
    }


def signature_text(function: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return`` as written in the source."""
    annotations = function.__annotations__
    params = ", ".join(
        f"{name}: {annotations[name]}" for name in inspect.signature(function).parameters
    )
    return f"{function.__name__}({params}) -> {annotations['return']}"


def test_all_hooks_lists_every_hookspec() -> None:
    assert {hook.__name__ for hook in voltx.hookspecs.ALL_HOOKS} == set(hookspecs())
    assert voltx.hookimpl is voltx.hookspecs.hookimpl


@pytest.mark.parametrize("name", sorted(hookspecs()))
def test_every_hookspec_has_a_docstring_and_full_annotations(name: str) -> None:
    function = hookspecs()[name]
    doc = inspect.getdoc(function)
    assert doc, f"{name} has no docstring"
    assert len(doc.splitlines()) == 1, f"{name}'s docstring should be one line"
    parameters = inspect.signature(function).parameters
    missing = [p for p in parameters if p not in function.__annotations__]
    assert not missing, f"{name}: parameters without annotations: {missing}"
    assert "return" in function.__annotations__
    # The annotations must resolve, so that tools and docs can show them.
    inspect.signature(function, eval_str=True)


def doc_headings() -> list[str]:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    return [line[4:].strip().strip("`") for line in text.splitlines() if line.startswith("### ")]


@pytest.mark.parametrize("name", sorted(hookspecs()))
def test_every_hookspec_is_documented_with_its_signature(name: str) -> None:
    expected = signature_text(hookspecs()[name])
    assert expected in doc_headings(), f"docs/plugins.md needs a heading: ### `{expected}`"


def test_the_docs_document_no_hook_that_does_not_exist() -> None:
    documented = {m.group(1) for h in doc_headings() if (m := re.match(r"(\w+)\(", h))}
    assert documented <= set(hookspecs())


def test_artifact_checks_vet_added_files(tmp_path: Path) -> None:
    """A registered check refuses a bad file in one line, and the store stays empty."""
    from voltx.cli import main as cli_main
    from voltx.testing import registered_plugin

    class Checks:
        @voltx.hookimpl
        def register_artifact_checks(self, register: Any) -> None:
            def must_start_with_magic(path: Path) -> None:
                if not path.read_bytes().startswith(b"VXCB"):
                    raise ValueError("magic is not VXCB")

            register("test_blob", must_start_with_magic)

    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(b"VXCB...")
    bad.write_bytes(b"NOPE...")
    store = tmp_path / "store"
    with registered_plugin(Checks()):
        assert cli_main(["--store", str(store), "artifacts", "add", "test_blob", str(bad)]) == 1
        assert not list(store.glob("refs/*"))
        assert cli_main(["--store", str(store), "artifacts", "add", "test_blob", str(good)]) == 0
