"""SessionOptions: the choices `run`, `plan` and `preflight` share, as one object or keywords."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest

import voltx
import voltx.plugins
from voltx import PhaseSpec, SessionOptions, hookimpl
from voltx.api import preflight
from voltx.errors import ConfigError
from voltx.resolve import resolve
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, memory_store_url, phase_plugin, registered_plugin


@attrs.frozen
class GreetConfig:
    word: str = "hello"


def _greet(ctx: Any) -> None:
    (ctx.outputs["greeting"] / "word.txt").write_text(ctx.config.word)


class _InProcessBackends:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("inprocess", InProcessBackend)


@pytest.fixture
def greet_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin host with one phase, ``t.greet``, and the in-process backend only."""
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "")
    monkeypatch.setattr(voltx.plugins, "_host", voltx.plugins.PluginHost())
    greet = PhaseSpec(
        id="t.greet", name="greet", entry=_greet, produces=("greeting",), config_class=GreetConfig
    )
    with registered_plugin(phase_plugin(greet)), registered_plugin(_InProcessBackends()):
        yield


def test_options_are_frozen_and_given_keywords_replace_them() -> None:
    options = SessionOptions(backend="local", overrides=["t.greet.word=hi"])
    assert options.overrides == ("t.greet.word=hi",)  # argparse's list, frozen
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.backend = "ssh"  # type: ignore[misc]
    replaced = options.replace(backend="ssh", store=None, profile="full")
    assert replaced == SessionOptions(backend="ssh", profile="full", overrides=("t.greet.word=hi",))


def test_plan_preflight_and_run_take_one_options_object(greet_plugins: None) -> None:
    store = memory_store_url()
    options = SessionOptions(store=store, backend="inprocess", overrides=["t.greet.word=hi"])

    plan = voltx.plan("t.greet", options=options)
    assert (plan.backend, plan.store, plan.to_run) == ("inprocess", store, ["t.greet"])
    assert preflight("t.greet", options=options) == []
    # A keyword replaces the option of the same name.
    with pytest.raises(ConfigError, match=r"t\.greet\.wrod: unknown key; did you mean word"):
        voltx.plan("t.greet", options=options, overrides=["t.greet.wrod=hi"])

    result = voltx.run("t.greet", options=options)
    assert result.ok
    greeting = ArtifactStore.open(store).resolve("greeting")
    assert greeting.files[0].path == "word.txt"


def test_a_resolved_run_holds_the_selection_configs_and_plan(greet_plugins: None) -> None:
    options = SessionOptions(store=memory_store_url(), backend="inprocess")
    resolved = resolve("greeting", options, force=True)  # an artifact names its producer
    assert resolved.targets == ("t.greet",)
    assert resolved.selected == ("t.greet",) and resolved.to_run == ("t.greet",)
    assert resolved.configs == {"t.greet": {"word": "hello"}}
    (phase,) = resolved.plan.phases
    assert (phase.action, phase.reason) == ("run", "forced")
    assert phase.fingerprint is not None
    assert resolved.backend == "inprocess" and resolved.plan.timeline is None
