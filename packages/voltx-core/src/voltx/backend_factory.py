"""Making a run's backends: each registered backend with its project settings.

A backend is made where it is first used (`run_backends`): a run routed to several backends
(`voltx.routing`) makes each once, and closes them all at its end.
"""

from __future__ import annotations

import os
from pathlib import Path

from voltx.backend import Backend
from voltx.errors import BackendError
from voltx.resolve import ResolvedRun
from voltx.routing import RunBackends
from voltx.session import Session, settings_for


def make_backend(session: Session, name: str | None = None) -> Backend:
    """The backend `name` (by default the session's) with its project settings."""
    name = name or session.backend
    factory = session.registry.backend(name)
    # Named, not made: a plan or a refused run leaves the store as it found it.
    work_dir = session.store.local_dir("work", create=False) or _user_work_dir()
    settings = settings_for(session, name)
    try:
        if settings is not None:
            backend = factory(work_dir=work_dir, settings=settings)
        else:
            backend = factory(work_dir=work_dir, **session.project.backends.get(name, {}))
    except TypeError as exc:
        raise BackendError(f"backend {name}: bad settings: {exc}") from exc
    if not isinstance(backend, Backend):
        raise BackendError(f"backend {name!r} factory returned {backend!r}")
    return backend


def _user_work_dir() -> Path:
    base = Path(os.environ.get("VOLTX_HOME", Path.home() / ".voltx"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def run_backends(resolved: ResolvedRun, given: Backend | None = None) -> RunBackends:
    """The backends of a resolved run, each made (with its project settings) when first used.

    `given` stands for the run's backend (and for its own name); it stays open when the others
    are closed.
    """
    session = resolved.session
    return RunBackends(resolved.routing, lambda name: make_backend(session, name), given=given)
