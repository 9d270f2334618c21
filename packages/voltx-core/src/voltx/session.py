"""Everything a run or plan resolves before it starts: project, plugins, graph, store, configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from voltx._logging import is_secret_key, register_environment_secrets
from voltx.config import merge, parse_overrides, structure, unstructure
from voltx.errors import ConfigError, GraphError, did_you_mean
from voltx.graph import Graph
from voltx.imports import check_artifact
from voltx.plugins import Registry, registry
from voltx.project import Project, find_project_file, load_project, resolve_store_url
from voltx.store import ArtifactStore

Overrides = Sequence[str] | Mapping[str, Any] | None


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

    def select(self, targets: str | Sequence[str]) -> list[str]:
        """The target phases and their upstream closure, in topological order."""
        return self.graph.closure(self.graph.resolve_targets(targets), self.pinned)

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
        listed = {
            name: Path(self.project.inputs[name])
            for name in sorted(((needed | optional) - produced) & set(self.project.inputs))
        }
        absent = [
            f"inputs.{name}: no such file or folder: {path}"
            for name, path in listed.items()
            if not path.exists()
        ]
        if absent:
            source = str(self.project.path) if self.project.path else None
            raise ConfigError(absent, source=source)
        missing = sorted(a for a in needed - produced - set(listed) if not self.store.has(a))
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
        elif is_secret_key(key) and value:
            public[key] = "***"
            secret[key] = value
        else:
            public[key] = value
    return public, secret


def open_session(
    *,
    store: str | None = None,
    backend: str | None = None,
    config: str | Path | Mapping[str, Mapping[str, Any]] | None = None,
    profile: str | None = None,
    overrides: Overrides = None,
) -> Session:
    """Load the project (a path, per-phase tables, or the nearest ``voltx.toml``) and plugins."""
    if isinstance(config, Mapping):
        project = Project(phases={str(k): dict(v) for k, v in config.items()})
    else:
        path = Path(config) if config is not None else find_project_file()
        project = load_project(path)
    register_environment_secrets(project.secrets_env)
    plugin_registry = registry()
    graph = Graph.build(plugin_registry.phases.values())
    tables = parse_overrides(overrides or [], list(plugin_registry.phases))
    unknown = [("phases", pid) for pid in project.phases if pid not in plugin_registry.phases]
    unknown += [
        ("budget.phases", pid) for pid in project.budget.phases if pid not in plugin_registry.phases
    ]
    if unknown:
        known = list(plugin_registry.phases)
        raise ConfigError(
            [f"{table}.{pid}: no such phase{did_you_mean(pid, known)}" for table, pid in unknown],
            source=str(project.path) if project.path else None,
        )
    store_url = resolve_store_url(store, Path.cwd()) if store else project.store
    return Session(
        project=project,
        registry=plugin_registry,
        graph=graph,
        store=ArtifactStore.open(store_url),
        profile=profile or project.profile,
        backend=backend or project.backend,
        overrides=tables,
    )
