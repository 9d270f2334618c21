"""Checks before anything is rented: all problems found at once, or none.

A phase that starts with a file missing fails partway through, after the GPU hours are paid
for. Preflight checks, for every phase that will run: its inputs (in the store, listed
as a readable file, or made by a phase upstream), that the store accepts writes (a probe record
written and deleted under its prefix), that the disk a job gets holds its inputs, outputs and
checkpoints, that the backend can provide the phase's resources (its own `preflight`:
credentials, offers). A run that routes phases to several backends (`voltx.routing`) has each
backend check the phases routed to it: a GPU phase sent to a backend without GPUs is one line
naming both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from voltx.backend import Backend
from voltx.errors import VoltxError
from voltx.planning.estimates import PROFILE_SCALE, artifact_bytes
from voltx.remote_inputs import url_problems
from voltx.routing import RunBackends
from voltx.session import Session

# A checkpoint is about the size of the outputs, and the checkpoint manager keeps the newest 3.
CHECKPOINT_COPIES = 3
_GB = 1e9


class PreflightError(VoltxError):
    """One or more preflight checks failed; `problems` lists each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"preflight found {len(problems)} problem(s): " + "; ".join(problems))


def preflight_problems(
    session: Session,
    phase_ids: Sequence[str],
    backend: Backend | RunBackends,
    to_run: Sequence[str],
) -> list[str]:
    """Every problem that would stop these phases, without changing anything.

    Inputs are checked for every selected phase; resources only for those that will run (an
    up-to-date phase is skipped and needs no machine), each on its own backend (`backend` is
    the one backend of every phase, or the run's backends by phase).
    """
    backends = backend if isinstance(backend, RunBackends) else RunBackends.single(backend)
    problems: list[str] = []
    produced = {a for pid in phase_ids for a in session.registry.phase(pid).produces}
    for phase_id in phase_ids:
        spec = session.registry.phase(phase_id)
        for name in spec.requires:
            if name in produced or session.store.has(name):
                continue
            listed = session.project.inputs.get(name)
            if name in session.project.remote_inputs:
                continue  # a URL input: checked below, by reaching it
            if listed is None:
                problems.append(
                    f"{name} (needed by {phase_id}) is not in the store and no phase makes it; "
                    "add it with `voltx artifacts add NAME PATH` or list it under [inputs]"
                )
            elif not Path(listed).exists():
                problems.append(f"inputs.{name}: no such file or folder: {listed} ({phase_id})")
            elif Path(listed).is_file() and not _readable(Path(listed)):
                problems.append(f"inputs.{name}: cannot read {listed} ({phase_id})")
    readers: dict[str, list[str]] = {}
    for phase_id in phase_ids:
        spec = session.registry.phase(phase_id)
        for name in (*spec.requires, *spec.optional):
            if name not in produced and name in session.project.remote_inputs:
                readers.setdefault(name, []).append(phase_id)
    urls = url_problems(session.project.remote_inputs, readers)
    problems.extend(urls.problems)
    problems.extend(_store_writable(session))
    for name in backends.routing.names(to_run):
        routed = backends.routing.phases_on(name, to_run)
        executor = backends.get(name)
        problems.extend(_disk_problems(session, executor, routed, urls.sizes))
        resources = {
            pid: session.registry.phase(pid).resources_for(session.profile) for pid in routed
        }
        problems.extend(executor.preflight(resources))
        problems.extend(executor.store_problems(session.store.url))
    return problems


def _disk_problems(
    session: Session, backend: Backend, to_run: Sequence[str], url_sizes: Mapping[str, int]
) -> list[str]:
    """A phase whose inputs, outputs and checkpoints do not fit the disk its job would get.

    Inputs are the required ones and the optional ones there are. Sizes: a URL input by what
    its remote holds now (`url_sizes`, from preflight's probe; the job downloads it), an input
    in the store by its manifest, a listed input file by its size, anything else by its
    producer's declared `output_gb`; outputs by the phase's own `output_gb`. Declared sizes are
    the full profile's, scaled down for a lighter one as hours are.
    """
    scale = PROFILE_SCALE.get(session.profile, 1.0)
    declared: dict[str, float] = {}
    for spec in session.registry.phases.values():
        for name in spec.produces:
            declared[name] = spec.output_gb * scale / max(1, len(spec.produces))
    present = session.project.inputs.keys() | url_sizes.keys()
    problems = []
    for phase_id in to_run:
        spec = session.registry.phase(phase_id)
        resources = spec.resources_for(session.profile)
        # Optional inputs count when there is one to read (0.2's raw datasets are optional).
        names = (
            *spec.requires,
            *(n for n in spec.optional if n in present or session.store.has(n)),
        )
        by_url = [name for name in names if name in url_sizes]
        in_store = tuple(name for name in names if name not in url_sizes)
        inputs = (
            artifact_bytes(session.store, in_store, declared)
            + sum(url_sizes[name] for name in by_url)
            + sum(
                _size(Path(session.project.inputs[name]))
                for name in in_store
                if name in session.project.inputs and session.store.ref(name) is None
            )
        )
        outputs = spec.output_gb * scale * _GB
        checkpoints = CHECKPOINT_COPIES * outputs
        needed_gb = (inputs + outputs + checkpoints) / _GB
        have_gb = backend.job_disk_gb(resources)
        if needed_gb > have_gb:
            problems.append(
                f"phase {phase_id} needs about {needed_gb:,.0f} GB of disk (inputs "
                f"{inputs / _GB:,.1f}, outputs {outputs / _GB:,.1f}, checkpoints "
                f"{checkpoints / _GB:,.1f} GB) but its job gets {have_gb:,.0f} GB on backend "
                f"{backend.name}: raise the phase's disk_gb or the backend's disk setting"
            )
    return problems


def _size(path: Path) -> int:
    """Bytes of a file or a folder's files; 0 for what is not there (reported elsewhere)."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            stream.read(1)
    except OSError:
        return False
    return True


def _store_writable(session: Session) -> list[str]:
    root = session.store.local_root
    if root is not None:
        # A local folder: ask the OS rather than leave a probe's folder behind.
        existing = next((p for p in (root, *root.parents) if p.exists()), root)
        if not os.access(existing, os.W_OK | os.X_OK):
            return [f"store {session.store.url} is not writable"]
        return []
    probe = f"preflight/{uuid.uuid4().hex}.json"
    try:
        session.store.write_record(probe, {"probe": True})
        session.store.delete_record(probe)
    except Exception as exc:  # any backend's write failure is the problem to report
        return [f"store {session.store.url} is not writable: {type(exc).__name__}: {exc}"]
    return []
