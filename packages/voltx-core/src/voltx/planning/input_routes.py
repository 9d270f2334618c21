"""Where each input's bytes go, for `voltx plan` and `voltx manifest`.

A 44 GB corpus copied through a laptop is the slow path the runbooks warn against; a plan that
says which machine reads each input, and how many bytes pass through this one, shows it before
anything is rented. A URL input is read by the phase's host from its URL (`docs/inputs.md`):
nothing passes through this machine. A store input passes through here only when the store is
a folder of this machine and the phase runs elsewhere (the backend copies it over).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from voltx.errors import InputUnreachableError, StoreError
from voltx.remote_inputs import is_remote_artifact, read_document
from voltx.session import Session
from voltx.store.remote import RemoteInput

THIS_MACHINE = "this machine"


@attrs.frozen
class InputRoute:
    """One input of one phase: its size, where it comes from, who reads it, bytes through here."""

    phase_id: str
    artifact: str
    size: int | None
    source: str
    reader: str
    through_here: int | None

    def describe(self) -> str:
        """``raw_stack 44.0 GB: read by the host from hf://...; 0 B through this machine``."""
        said = f"{self.artifact} {_bytes(self.size)}: read by {self.reader} from {self.source}"
        if self.reader == THIS_MACHINE:
            return said  # the phase runs here: nothing is relayed to another machine
        return f"{said}; {_bytes(self.through_here)} through {THIS_MACHINE}"


def reader_of(backend: str) -> str:
    """Which machine a job on `backend` runs on, in words."""
    return THIS_MACHINE if backend == "local" else f"the {backend} host"


def input_routes(
    session: Session, phase_ids: Sequence[str], backend_of: Callable[[str], str]
) -> tuple[InputRoute, ...]:
    """Each input of `phase_ids` that no phase among them makes, with where its bytes go;
    `backend_of` names the backend each phase is routed to."""
    produced = {a for pid in phase_ids for a in session.registry.phase(pid).produces}
    remote_docs: dict[str, RemoteInput | None] = {}
    routes = []
    for phase_id in phase_ids:
        spec = session.registry.phase(phase_id)
        for name in (*spec.requires, *spec.optional):
            if name in produced:
                continue
            reader = reader_of(backend_of(phase_id))
            route = _route(session, phase_id, name, reader, remote_docs)
            if route is not None:
                routes.append(route)
    return tuple(routes)


def remote_document(session: Session, name: str) -> RemoteInput | None:
    """The URL input `name` as it is now (listed in ``[inputs]``) or as last recorded."""
    source = session.project.remote_inputs.get(name)
    if source is not None:
        try:
            return source.probe(name)
        except InputUnreachableError:
            return None  # preflight names it; a plan still shows the rest
    digest = session.store.ref(name)
    if digest is None:
        return None
    try:
        artifact = session.store.load_manifest(digest)
        return read_document(session.store, artifact) if is_remote_artifact(artifact) else None
    except StoreError:
        return None


def _route(
    session: Session,
    phase_id: str,
    name: str,
    reader: str,
    remote_docs: dict[str, RemoteInput | None],
) -> InputRoute | None:
    if name not in remote_docs:
        remote_docs[name] = remote_document(session, name)
    document = remote_docs[name]
    if document is not None:
        # The host opens the URL itself: no byte of it is staged from here.
        return InputRoute(phase_id, name, document.size, document.url, reader, 0)
    copied_here = reader != THIS_MACHINE and session.store.local_root is not None
    digest = session.store.ref(name)
    if digest is not None:
        try:
            size: int | None = session.store.load_manifest(digest).size
        except StoreError:
            size = None
        through = size if copied_here else 0
        return InputRoute(phase_id, name, size, f"store {session.store.url}", reader, through)
    listed = session.project.inputs.get(name)
    if listed is None:
        return None
    size = _local_size(Path(listed))
    return InputRoute(phase_id, name, size, listed, reader, size)


def _local_size(path: Path) -> int | None:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return None


def _bytes(size: int | None) -> str:
    if size is None:
        return "? B"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
