"""Every hook a voltx plugin can implement. Plugins mark their functions with `voltx.hookimpl`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from voltx.backend import Backend
    from voltx.generation import GeneratorSpec
    from voltx.spec import PhaseSpec

PROJECT_NAME = "voltx"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

RegisterPhase = Callable[["PhaseSpec"], None]
BackendFactory = Callable[..., "Backend"]


class RegisterBackend(Protocol):
    """``register(name, factory, settings=None)``, the callback of `register_backends`.

    With a `settings` attrs class, voltx structures the ``[backends.NAME]`` table of
    ``voltx.toml`` into it (every problem reported with its key path) and calls
    ``factory(work_dir=..., settings=instance)``; without one, ``factory(work_dir=..., **table)``.
    """

    def __call__(self, name: str, factory: BackendFactory, settings: type | None = None) -> None:
        """Register the backend `name`, made by `factory`, configured by `settings`."""


# A check takes the path of a file or folder about to be added as the artifact, and raises
# (ValueError or a VoltxError) with an explanation when its names, shapes or headers are wrong.
ArtifactCheck = Callable[[Path], None]
RegisterArtifactCheck = Callable[[str, "ArtifactCheck | str"], None]
RegisterGenerator = Callable[["GeneratorSpec"], None]


@hookspec
def register_phases(register: RegisterPhase) -> None:
    """Call ``register(spec)`` once for each `PhaseSpec` the plugin provides."""


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Call ``register(name, factory, settings=None)``; voltx calls ``factory(work_dir=...)``."""


@hookspec
def register_artifact_checks(register: RegisterArtifactCheck) -> None:
    """Call ``register(artifact_name, check)``; a check (or "module:function") vets added files."""


@hookspec
def register_generators(register: RegisterGenerator) -> None:
    """Call ``register(spec)`` for each `GeneratorSpec` (a model `voltx generate` can run)."""


@hookspec
def phase_started(run_id: str, phase_id: str, backend: str, attempt: int) -> None:
    """Observe that a phase's job was started on `backend`."""


@hookspec
def phase_finished(
    run_id: str, phase_id: str, status: str, outputs: Mapping[str, str], error: str | None
) -> None:
    """Observe that a phase ended: succeeded, failed, skipped, blocked or cancelled."""


ALL_HOOKS: tuple[Any, ...] = (
    register_phases,
    register_backends,
    register_artifact_checks,
    register_generators,
    phase_started,
    phase_finished,
)
