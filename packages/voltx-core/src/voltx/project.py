"""The project file, ``voltx.toml``: where the store is, which backend, per-phase settings."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.budget import BudgetConfig, parse_budget_table
from voltx.errors import ConfigError, did_you_mean

PROJECT_FILE = "voltx.toml"
DEFAULT_STORE = "file://.voltx"

_TOP_LEVEL_KEYS = ("project", "phases", "backends", "inputs", "budget")
_PROJECT_KEYS = ("store", "backend", "profile", "max_parallel", "max_attempts", "secrets_env")


@attrs.frozen
class Project:
    """A parsed ``voltx.toml`` (or the built-in demo project when there is none)."""

    store: str = DEFAULT_STORE
    backend: str = "local"
    profile: str = "tiny"
    max_parallel: int | None = None
    max_attempts: int = 3
    phases: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    backends: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    inputs: Mapping[str, str] = attrs.field(factory=dict)
    secrets_env: tuple[str, ...] = ()
    budget: BudgetConfig = BudgetConfig()
    path: Path | None = None


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``voltx.toml`` in `start` or a parent folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_project(path: Path | None) -> Project:
    """Parse a project file; every problem in it is reported in one ConfigError."""
    if path is None:
        return Project()
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(["file not found"], source=source) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"malformed TOML: {exc}"], source=source) from exc
    problems: list[str] = []
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            problems.append(f"{key}: unknown table{did_you_mean(key, _TOP_LEVEL_KEYS)}")
    project_table = _table(data, "project", problems)
    for key in project_table:
        if key not in _PROJECT_KEYS:
            problems.append(f"project.{key}: unknown key{did_you_mean(key, _PROJECT_KEYS)}")
    values: dict[str, Any] = {}
    for key, kind in (
        ("store", str),
        ("backend", str),
        ("profile", str),
        ("max_parallel", int),
        ("max_attempts", int),
    ):
        if key in project_table:
            value = project_table[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"project.{key}: expected {kind.__name__}, got {value!r}")
            else:
                values[key] = value
    secrets_env = project_table.get("secrets_env", [])
    if not isinstance(secrets_env, list) or not all(isinstance(s, str) for s in secrets_env):
        problems.append("project.secrets_env: expected a list of environment variable names")
        secrets_env = []
    phases = _table(data, "phases", problems)
    backends = _table(data, "backends", problems)
    inputs = _table(data, "inputs", problems)
    for name, location in inputs.items():
        if not isinstance(location, str):
            problems.append(f"inputs.{name}: expected a path, got {location!r}")
    budget = parse_budget_table(data.get("budget", {}), problems)
    if problems:
        raise ConfigError(problems, source=source)
    store = resolve_store_url(values.pop("store", DEFAULT_STORE), path.parent)
    resolved_inputs = {
        name: str((path.parent / Path(loc).expanduser()).resolve()) for name, loc in inputs.items()
    }
    return Project(
        store=store,
        phases=phases,
        backends=backends,
        inputs=resolved_inputs,
        secrets_env=tuple(secrets_env),
        budget=budget,
        path=path,
        **values,
    )


def resolve_store_url(url: str, base: Path) -> str:
    """A local store path made absolute against `base` (the project folder); others unchanged."""
    local = url.removeprefix("file://")
    if "://" in local:
        return url
    # `~/store` means the home folder, not a folder named "~" inside the project.
    return str((base / Path(local).expanduser()).resolve())


def _table(data: Mapping[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{key}: expected a table, got {type(value).__name__}")
        return {}
    return value


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
[inputs]
# raw_humaneval = "data/humaneval.jsonl"

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

# Per-backend settings.
[backends.local]
# cpu_cores = 8
"""
