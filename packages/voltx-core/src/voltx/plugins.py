"""Plugin loading and the registry of phases and backends.

Plugins are found through the ``voltx`` entry-point group (voltx's own phases and backends too),
loaded on first use, never at import. ``VOLTX_LOAD_PLUGINS`` (comma-separated entry-point names)
limits which load; ``VOLTX_PLUGINS`` names extra plugin modules to import, which is how a plugin
registered only for a test also reaches the worker subprocesses.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import attrs
import pluggy
import structlog

from voltx import hookspecs
from voltx.config_ranges import warn_unchecked_fields
from voltx.errors import PluginError, UnknownPhaseError, did_you_mean
from voltx.generation import GeneratorSpec
from voltx.hookspecs import ArtifactCheck, BackendFactory
from voltx.spec import PhaseSpec

ENTRY_POINT_GROUP = "voltx"
log = structlog.get_logger(__name__)


@attrs.define
class Registry:
    """Every phase spec and backend factory the loaded plugins registered."""

    phases: dict[str, PhaseSpec] = attrs.field(factory=dict)
    phase_origin: dict[str, str] = attrs.field(factory=dict)
    backends: dict[str, BackendFactory] = attrs.field(factory=dict)
    backend_origin: dict[str, str] = attrs.field(factory=dict)
    # backend name -> the attrs class its ``[backends.NAME]`` table is structured into
    backend_settings: dict[str, type] = attrs.field(factory=dict)
    # artifact name -> [(origin, check or "module:function")]
    artifact_checks: dict[str, list[tuple[str, ArtifactCheck | str]]] = attrs.field(factory=dict)
    generators: dict[str, GeneratorSpec] = attrs.field(factory=dict)
    generator_origin: dict[str, str] = attrs.field(factory=dict)

    def phase(self, phase_id: str) -> PhaseSpec:
        try:
            return self.phases[phase_id]
        except KeyError:
            raise UnknownPhaseError(phase_id, self.phases) from None

    def backend(self, name: str) -> BackendFactory:
        try:
            return self.backends[name]
        except KeyError:
            known = ", ".join(sorted(self.backends)) or "none"
            raise PluginError(
                f"unknown backend {name!r}{did_you_mean(name, self.backends)} (installed: {known})"
            ) from None


class PluginHost:
    """The pluggy manager plus the registry its plugins filled."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self._origin: dict[int, str] = {}
        self._registry: Registry | None = None
        self._lock = threading.RLock()
        self._loaded = False
        self._loading = False

    def _load(self) -> None:
        with self._lock:
            # A plugin that asks for the registry while it is being imported gets what is loaded.
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                self._load_all()
                # Only after success: after a failure the next use fails the same way, instead
                # of going on with whichever plugins happened to load before the broken one.
                self._loaded = True
            finally:
                self._loading = False

    def _load_all(self) -> None:
        """Import every allowed entry point, then the modules named in VOLTX_PLUGINS."""
        allowed = os.environ.get("VOLTX_LOAD_PLUGINS")
        names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if names is not None and entry_point.name not in names:
                continue
            distribution = entry_point.dist.name if entry_point.dist else entry_point.name
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {entry_point.name!r} from distribution {distribution!r} failed "
                    f"to import: {type(exc).__name__}: {exc}",
                    distribution,
                ) from exc
            self.add(plugin, distribution)
        extra = os.environ.get("VOLTX_PLUGINS", "").split(",")
        for module_name in filter(None, (name.strip() for name in extra)):
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise PluginError(
                    f"plugin module {module_name!r} (VOLTX_PLUGINS) failed to import: "
                    f"{type(exc).__name__}: {exc}",
                    module_name,
                ) from exc
            self.add(module, module_name)

    def add(self, plugin: ModuleType | object, origin: str) -> None:
        """Register one plugin object; `origin` (its distribution) names it in errors."""
        with self._lock:
            if self.manager.is_registered(plugin):
                return
            try:
                self.manager.register(plugin, name=f"{origin}:{id(plugin)}")
                self.manager.check_pending()
            except pluggy.PluginValidationError as exc:
                # pluggy checks a hookimpl's arguments before registering anything, and unknown
                # hooks (check_pending) after: only in the second case is there something to undo.
                if self.manager.is_registered(plugin):
                    self.manager.unregister(plugin)
                raise PluginError(f"plugin from {origin!r}: {exc}", origin) from exc
            self._origin[id(plugin)] = origin
            self._registry = None

    def remove(self, plugin: ModuleType | object) -> None:
        with self._lock:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self._origin.pop(id(plugin), None)
            self._registry = None

    @property
    def hook(self) -> Any:
        self._load()
        return self.manager.hook

    def registry(self) -> Registry:
        """Load plugins if needed and collect what they register."""
        self._load()
        with self._lock:
            if self._registry is None:
                self._registry = self._collect()
            return self._registry

    def _collect(self) -> Registry:
        registry = Registry()

        def register_phase(spec: PhaseSpec, origin: str) -> None:
            if not isinstance(spec, PhaseSpec):
                raise PluginError(f"{origin!r} registered {spec!r}, not a PhaseSpec", origin)
            _refuse_duplicate("phase id", spec.id, registry.phase_origin, origin)
            registry.phases[spec.id] = spec
            registry.phase_origin[spec.id] = origin
            warn_unchecked_fields(spec.id, spec.config_class, origin)

        def register_backend(
            name: str, factory: BackendFactory, settings: type | None = None, *, origin: str
        ) -> None:
            _refuse_duplicate("backend", name, registry.backend_origin, origin)
            if settings is not None and not attrs.has(settings):
                raise PluginError(
                    f"{origin!r} registered backend {name!r} with settings {settings!r}, "
                    "not an attrs class",
                    origin,
                )
            registry.backends[name] = factory
            registry.backend_origin[name] = origin
            if settings is not None:
                registry.backend_settings[name] = settings

        def register_check(name: str, check: ArtifactCheck | str, origin: str) -> None:
            registry.artifact_checks.setdefault(name, []).append((origin, check))

        def register_generator(spec: GeneratorSpec, origin: str) -> None:
            if not isinstance(spec, GeneratorSpec):
                raise PluginError(f"{origin!r} registered {spec!r}, not a GeneratorSpec", origin)
            _refuse_duplicate("generator", spec.name, registry.generator_origin, origin)
            registry.generators[spec.name] = spec
            registry.generator_origin[spec.name] = origin

        # Each implementation is called on its own so that a registration names its plugin.
        hooks = self.manager.hook
        for impl in hooks.register_phases.get_hookimpls():
            origin = self._origin.get(id(impl.plugin), impl.plugin_name)
            self._call(impl.function, origin, functools.partial(register_phase, origin=origin))
        for impl in hooks.register_backends.get_hookimpls():
            origin = self._origin.get(id(impl.plugin), impl.plugin_name)
            self._call(impl.function, origin, functools.partial(register_backend, origin=origin))
        for impl in hooks.register_artifact_checks.get_hookimpls():
            origin = self._origin.get(id(impl.plugin), impl.plugin_name)
            self._call(impl.function, origin, functools.partial(register_check, origin=origin))
        for impl in hooks.register_generators.get_hookimpls():
            origin = self._origin.get(id(impl.plugin), impl.plugin_name)
            self._call(impl.function, origin, functools.partial(register_generator, origin=origin))
        return registry

    @staticmethod
    def _call(function: Any, origin: str, register: Any) -> None:
        try:
            function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {origin!r} failed while registering: {type(exc).__name__}: {exc}", origin
            ) from exc

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook; an observer's failure is reported, never fatal to the run."""
        try:
            getattr(self.hook, hook_name)(**kwargs)
        except Exception as exc:
            log.warning(
                "observer hook failed", hook=hook_name, error=f"{type(exc).__name__}: {exc}"
            )


_host = PluginHost()


def host() -> PluginHost:
    """The process-wide plugin host."""
    return _host


def registry() -> Registry:
    """The registry of the process-wide plugin host."""
    return _host.registry()


@contextmanager
def registered(plugin: ModuleType | object, origin: str = "test") -> Iterator[None]:
    """Register `plugin` for the length of a `with` block.

    When `plugin` is an importable module, it is also named in ``VOLTX_PLUGINS`` so that worker
    subprocesses started meanwhile load it too.
    """
    _host.add(plugin, origin)
    module_name = plugin.__name__ if isinstance(plugin, ModuleType) else None
    previous = os.environ.get("VOLTX_PLUGINS")
    if module_name and importlib.util.find_spec(module_name) is not None:
        os.environ["VOLTX_PLUGINS"] = ",".join(filter(None, [previous, module_name]))
    try:
        yield
    finally:
        _host.remove(plugin)
        if module_name:
            if previous is None:
                os.environ.pop("VOLTX_PLUGINS", None)
            else:
                os.environ["VOLTX_PLUGINS"] = previous


def _refuse_duplicate(kind: str, key: str, origins: Mapping[str, str], origin: str) -> None:
    """PluginError naming both plugins when `key` was registered already (`origins`: key ->
    the plugin that registered it)."""
    if key in origins:
        raise PluginError(
            f"duplicate {kind} {key!r}: registered by {origins[key]!r} and by {origin!r}", origin
        )
