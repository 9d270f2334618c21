"""The project file, ``voltx.toml``: where the store is, which backend, per-phase settings."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.budget import BudgetConfig, BudgetTable
from voltx.config import collect, expecting
from voltx.errors import ConfigError, did_you_mean
from voltx.plugins import Registry
from voltx.remote_inputs import RemoteSource
from voltx.routing import RoutingRules, RoutingTable, rule_problems, split_phase_tables
from voltx.store.remote import is_url

PROJECT_FILE = "voltx.toml"
DEFAULT_STORE = "file://.voltx"


@attrs.frozen(kw_only=True)
class ProjectTable:
    """The ``[project]`` table: where the store is, which backend and profile, how many at once."""

    store: str = attrs.field(default=DEFAULT_STORE, metadata=expecting("str"))
    backend: str = attrs.field(default="local", metadata=expecting("str"))
    profile: str = attrs.field(default="tiny", metadata=expecting("str"))
    max_parallel: int | None = attrs.field(default=None, metadata=expecting("int"))
    max_attempts: int = attrs.field(default=3, metadata=expecting("int"))
    secrets_env: tuple[str, ...] = attrs.field(
        default=(), metadata=expecting("a list of environment variable names")
    )


@attrs.frozen(kw_only=True)
class _ProjectFile:
    """A ``voltx.toml`` as written; every table is optional."""

    project: ProjectTable = ProjectTable()
    phases: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    budget: BudgetTable = BudgetTable()
    routing: RoutingTable = RoutingTable()


@attrs.frozen(kw_only=True)
class Project(ProjectTable):
    """A parsed ``voltx.toml`` (or the built-in demo project when there is none).

    `backends` holds each ``[backends.NAME]`` table as written; `backend_settings` the same
    tables structured into the settings class each backend registered (when the project was
    loaded against the plugins' registry), so a run makes its backend from checked settings.
    `routing` holds the rules that send phases to other backends than `backend`
    (`voltx.routing`); the ``backend`` keys of ``[phases]`` tables are there, not in `phases`.
    """

    phases: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    inputs: Mapping[str, str] = attrs.field(factory=dict)
    # ``[inputs]`` entries given by URL (`voltx.remote_inputs`); `inputs` keeps the local paths.
    remote_inputs: Mapping[str, RemoteSource] = attrs.field(factory=dict)
    budget: BudgetConfig = BudgetConfig()
    backend_settings: Mapping[str, Any] = attrs.field(factory=dict)
    routing: RoutingRules = RoutingRules()
    path: Path | None = None


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``voltx.toml`` in `start` or a parent folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def read_project_file(path: Path) -> str:
    """The text of a project file. Everything that reads ``voltx.toml`` reads it here."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(["file not found"], source=str(path)) from exc
    except UnicodeDecodeError as exc:
        # TOML is UTF-8; a file in another encoding (or binary) is named, not a traceback.
        raise ConfigError(
            [f"not UTF-8 text (byte {exc.start}: {exc.reason}); TOML files are UTF-8"],
            source=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read it ({exc.strerror})"], source=str(path)) from None


def load_project(path: Path | None, registry: Registry | None = None) -> Project:
    """Parse a project file; every problem in it is reported in one ConfigError.

    With the plugins' `registry`, the phase ids of ``[phases]`` and ``[budget.phases]`` and
    each backend's settings table are checked in the same pass, so that one run reports every
    mistake in the file.
    """
    if path is None:
        return Project()
    source = str(path)
    text = read_project_file(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"malformed TOML: {exc}"], source=source) from exc
    problems: list[str] = []
    parsed = collect(_ProjectFile, data, "", problems)
    settings: dict[str, Any] = {}
    if registry is not None:
        phases = _tables(data.get("phases"))
        budget_phases = _tables(_tables(data.get("budget")).get("phases"))
        problems += unknown_phases(phases, budget_phases, registry)
        settings = backend_settings(_tables(data.get("backends")), registry, problems)
    if isinstance(parsed, _ProjectFile):
        # The routing keys are checked in the same pass, so one run reports every mistake.
        phase_configs, phase_backends = split_phase_tables(parsed.phases, problems)
        rules = RoutingRules(phases=phase_backends, table=parsed.routing)
        if registry is not None:
            problems += routing_problems(rules, registry)
    local_inputs, remote_inputs = split_inputs(_tables(data.get("inputs")), problems)
    if problems or not isinstance(parsed, _ProjectFile):
        raise ConfigError(problems, source=source)
    table = attrs.asdict(parsed.project, recurse=False)
    table["store"] = resolve_store_url(parsed.project.store, path.parent)
    resolved_inputs = {
        name: str((path.parent / Path(location).expanduser()).resolve())
        for name, location in local_inputs.items()
    }
    return Project(
        **table,
        phases=phase_configs,
        backends=parsed.backends,
        inputs=resolved_inputs,
        remote_inputs=remote_inputs,
        budget=parsed.budget.config(),
        backend_settings=settings,
        routing=rules,
        path=path,
    )


def split_inputs(
    table: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, str], dict[str, RemoteSource]]:
    """``[inputs]`` as local paths and URL inputs (`voltx.remote_inputs.RemoteSource`)."""
    local: dict[str, str] = {}
    remote: dict[str, RemoteSource] = {}
    for name, value in table.items():
        if isinstance(value, str):
            if is_url(value):
                remote[name] = RemoteSource(url=value)
            else:
                local[name] = value
        elif isinstance(value, Mapping):
            source = collect(RemoteSource, value, f"inputs.{name}", problems)
            if isinstance(source, RemoteSource):
                if is_url(source.url):
                    remote[name] = source
                else:
                    problems.append(f"inputs.{name}.url: expected a URL, got {source.url!r}")
        else:
            # A path is what most entries are; docs/inputs.md has the URL forms.
            problems.append(f"inputs.{name}: expected a path, got {value!r}")
    return local, remote


def unknown_phases(
    phases: Mapping[str, Any], budget_phases: Mapping[str, Any], registry: Registry
) -> list[str]:
    """A problem for each phase id of ``[phases]`` or ``[budget.phases]`` that no plugin has."""
    known = list(registry.phases)
    tables = [("phases", pid) for pid in phases] + [("budget.phases", pid) for pid in budget_phases]
    return [
        f"{table}.{pid}: no such phase{did_you_mean(pid, known)}"
        for table, pid in tables
        if pid not in registry.phases
    ]


def routing_problems(rules: RoutingRules, registry: Registry) -> list[str]:
    """A line for each routing rule naming a backend or family the plugins do not have."""
    families = {spec.family for spec in registry.phases.values()}
    return rule_problems(rules, registry.backends, families)


def backend_settings(
    tables: Mapping[str, Any], registry: Registry, problems: list[str]
) -> dict[str, Any]:
    """Each ``[backends.NAME]`` table in the settings class its backend registered.

    A table of a backend that registered no class (or is not installed) stays as written: its
    factory gets it as keyword arguments.
    """
    settings: dict[str, Any] = {}
    for name, table in tables.items():
        settings_class = registry.backend_settings.get(name)
        if settings_class is not None:
            settings[name] = collect(settings_class, table, f"backends.{name}", problems)
    return settings


def _tables(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def resolve_store_url(url: str, base: Path) -> str:
    """A local store path made absolute against `base` (the project folder); others unchanged."""
    local = url.removeprefix("file://")
    if "://" in local:
        return url
    # `~/store` means the home folder, not a folder named "~" inside the project.
    return str((base / Path(local).expanduser()).resolve())


INIT_TEMPLATE = """\
# voltx project file. Every key is optional; remove what you do not need.
# Docs: docs/concepts.md. Values here are overridden by `--set PHASE.KEY=VALUE` on the command line.

[project]
# Where artifacts live: a folder (file://), or s3://bucket/prefix.
store = "file://.voltx"
# Where phases run: local, ssh, vast (the last two come with voltx-backends).
backend = "local"
# Which config profile each phase starts from: tiny (minutes on a laptop) or full (the paper's
# sizes).
profile = "tiny"
# At most this many phases at once (default: as many as the backend's resources allow).
# max_parallel = 4
# Start a lost job (its process or machine vanished) again, from its last checkpoint, this often.
# max_attempts = 3
# Environment variables whose values are secrets: redacted from every log, ledger and lineage.
# secrets_env = ["HF_TOKEN"]

# User files that phases read, added to the store under these artifact names on first use.
# A URL (https://, s3://, gs://, hf://) is read by the phase's host itself: docs/inputs.md.
[inputs]
# raw_humaneval = "data/humaneval.jsonl"
# raw_stack = { url = "hf://datasets/ORG/NAME/stack_python.jsonl.zst", env = ["HF_TOKEN"] }

# Per-phase config, on top of the profile.
[phases]
# "2.1" = { batch_size = 16 }

# Spending and time limits (`voltx run --budget DOLLARS --max-hours HOURS` overrides the first
# two). When one is reached the run stops its jobs, gives back every machine and ends as
# budget_exceeded; run it again with a larger budget to resume.
[budget]
# dollars = 40.0
# max_hours = 12
# grace_s = 30          # how long a stopped job has to write its checkpoint
# [budget.phases."2.1"]
# dollars = 5.0
# max_hours = 2

# Route phases to other backends than [project] backend (docs/concepts.md, "Routing phases to
# backends"): a phase's own table wins (`"0.3" = { backend = "ssh" }` under [phases]), then its
# family, then whether it needs a GPU; the rest run on [project] backend.
[routing]
# family.codebook = "ssh"
# gpu = "vast"

# Per-backend settings.
[backends.local]
# cpu_cores = 8
"""
