"""Everything a run or plan resolves before it starts: project, plugins, graph, store, configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from voltx._logging import (
    REDACTED,
    is_secret_key,
    redact_text,
    register_environment_secrets,
)
from voltx.config import merge, parse_overrides, structure, unstructure
from voltx.errors import ConfigError, GraphError
from voltx.graph import Graph
from voltx.imports import check_artifact
from voltx.plugins import Registry, registry
from voltx.project import (
    Project,
    backend_settings,
    find_project_file,
    load_project,
    resolve_store_url,
    routing_problems,
    unknown_phases,
)
from voltx.remote_inputs import record_remote
from voltx.routing import RoutingRules, split_phase_tables
from voltx.store import ArtifactStore

Overrides = Sequence[str] | Mapping[str, Any] | None
ProjectConfig = str | Path | Mapping[str, Mapping[str, Any]] | None


def _frozen_overrides(value: Overrides) -> Overrides:
    # A list from argparse would leave the frozen options mutable underneath.
    if value is None or isinstance(value, str | Mapping):
        return value
    return tuple(value)


@attrs.frozen(kw_only=True)
class SessionOptions:
    """The choices that `voltx.run`, `voltx.plan` and `voltx.preflight` share.

    Each is None for "what the project file says": `store` (a URL or folder), `backend` (a
    registered name), `config` (a project file, per-phase tables, or None for the nearest
    ``voltx.toml``), `profile` (``tiny``, ``full``) and `overrides` (``["2.1.batch_size=16"]``
    or a mapping of the same keys).
    """

    store: str | None = None
    backend: str | None = None
    config: ProjectConfig = None
    profile: str | None = None
    overrides: Overrides = attrs.field(default=None, converter=_frozen_overrides)

    def replace(self, **given: Any) -> SessionOptions:
        """These options with each keyword that is not None in place of the option's value."""
        return attrs.evolve(self, **{k: v for k, v in given.items() if v is not None})


@attrs.frozen
class Session:
    """A loaded project against one store, with the registry and graph of the installed plugins."""

    project: Project
    registry: Registry
    graph: Graph
    store: ArtifactStore
    profile: str
    backend: str
    overrides: Mapping[str, Mapping[str, Any]]

    def pinned(self, artifact: str) -> bool:
        """True when the store holds `artifact` as added by the user (not made by a phase)."""
        digest = self.store.ref(artifact)
        if digest is None:
            return artifact in self.project.inputs
        try:
            return self.store.load_manifest(digest).lineage.get("phase") is None
        except Exception:
            return False

    def configs(self, phase_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each phase's resolved config as plain data; every problem is reported at once."""
        problems: list[str] = []
        resolved: dict[str, dict[str, Any]] = {}
        for phase_id in phase_ids:
            spec = self.registry.phase(phase_id)
            data = unstructure(spec.default_config(self.profile))
            data = merge(data, self.project.phases.get(phase_id, {}))
            data = merge(data, self.overrides.get(phase_id, {}))
            try:
                structure(spec.config_class, data, path=phase_id)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            resolved[phase_id] = data
        if problems:
            raise ConfigError(problems)
        return resolved

    def stage_inputs(self, phase_ids: Sequence[str]) -> None:
        """Add the project's listed input files the selection needs; fail on what nobody makes.

        Everything is checked before anything is added, so a bad input leaves the store as it was.
        """
        needed = {a for pid in phase_ids for a in self.registry.phase(pid).requires}
        produced = {a for pid in phase_ids for a in self.registry.phase(pid).produces}
        optional = {a for pid in phase_ids for a in self.registry.phase(pid).optional}
        from_outside = sorted((needed | optional) - produced)
        listed = {
            name: Path(self.project.inputs[name])
            for name in from_outside
            if name in self.project.inputs
        }
        remote = {
            name: self.project.remote_inputs[name]
            for name in from_outside
            if name in self.project.remote_inputs
        }
        # Re-read each URL's identity now (one listing or info per file): a changed remote gets a
        # new document, hence a new digest, and the phases reading it run again.
        probed = {name: source.probe(name) for name, source in remote.items()}
        absent = [
            f"inputs.{name}: no such file or folder: {path}"
            for name, path in listed.items()
            if not path.exists()
        ]
        if absent:
            source = str(self.project.path) if self.project.path else None
            raise ConfigError(absent, source=source)
        missing = sorted(
            a for a in needed - produced - set(listed) - set(remote) if not self.store.has(a)
        )
        if missing:
            users = {
                a: [pid for pid in phase_ids if a in self.registry.phase(pid).requires]
                for a in missing
            }
            details = "; ".join(f"{a} (needed by {', '.join(users[a])})" for a in missing)
            raise GraphError(
                f"no phase produces and the store lacks: {details}; "
                "add each with `voltx artifacts add NAME PATH` or list it under [inputs]",
                [pid for a in missing for pid in users[a]],
            )
        for name, path in listed.items():
            check_artifact(name, path)
        for name, path in listed.items():
            self.store.add(name, path)
        for name, document in probed.items():
            record_remote(self.store, name, remote[name], document)


def split_secrets(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate secret-named config values (sent by environment) from the rest (sent by file)."""
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            inner_public, inner_secret = split_secrets(value)
            public[key] = inner_public
            if inner_secret:
                secret[key] = inner_secret
        elif (is_secret_key(key) and value) or (
            isinstance(value, str) and redact_text(value) != value
        ):
            # Secret by its key's name, or a registered secret (an API key from the environment)
            # under a harmless name: either way it travels by environment, not in job.json.
            public[key] = REDACTED
            secret[key] = value
        else:
            public[key] = value
    return public, secret


def open_session(
    options: SessionOptions | None = None,
    *,
    store: str | None = None,
    backend: str | None = None,
    config: ProjectConfig = None,
    profile: str | None = None,
    overrides: Overrides = None,
) -> Session:
    """Load the project (a path, per-phase tables, or the nearest ``voltx.toml``) and plugins.

    Keywords given replace the matching `options`. The project file is read once, here, and
    checked against the plugins in the same pass (phase ids, backend settings).
    """
    options = (options or SessionOptions()).replace(
        store=store, backend=backend, config=config, profile=profile, overrides=overrides
    )
    plugin_registry = registry()
    if isinstance(options.config, Mapping):
        project = _project_of_tables(options.config, plugin_registry)
    else:
        path = Path(options.config) if options.config is not None else find_project_file()
        project = load_project(path, plugin_registry)
    register_environment_secrets(project.secrets_env)
    graph = Graph.build(plugin_registry.phases.values())
    tables = parse_overrides(options.overrides or [], list(plugin_registry.phases))
    store_url = resolve_store_url(options.store, Path.cwd()) if options.store else project.store
    return Session(
        project=project,
        registry=plugin_registry,
        graph=graph,
        store=ArtifactStore.open(store_url),
        profile=options.profile or project.profile,
        backend=options.backend or project.backend,
        overrides=tables,
    )


def _project_of_tables(tables: Mapping[str, Mapping[str, Any]], plugins: Registry) -> Project:
    """The demo project with these per-phase tables (``voltx.run(config={...})``)."""
    phases = {str(k): dict(v) for k, v in tables.items()}
    problems = unknown_phases(phases, {}, plugins)
    # A phase's table may name its backend here too, as in voltx.toml.
    configs, backends = split_phase_tables(phases, problems)
    rules = RoutingRules(phases=backends)
    problems += routing_problems(rules, plugins)
    if problems:
        raise ConfigError(problems)
    return Project(phases=configs, routing=rules)


def settings_for(session: Session, name: str) -> Any:
    """The settings instance of backend `name` when it registered a settings class, else None.

    From the project file when it has a ``[backends.NAME]`` table, else the class's defaults
    (where a setting is required, that is a problem with its key path).
    """
    settings_class = session.registry.backend_settings.get(name)
    if settings_class is None:
        return None
    loaded = session.project.backend_settings.get(name)
    if isinstance(loaded, settings_class):
        return loaded
    problems: list[str] = []
    tables = {name: session.project.backends.get(name, {})}
    settings = backend_settings(tables, session.registry, problems)
    if problems:
        source = session.project.path
        raise ConfigError(problems, source=str(source) if source else None)
    return settings[name]
