"""What a phase needs on its host (`voltx manifest`): each input, its size, and where it comes
from: a phase's output, a file added to the store, a local path or a URL the host reads."""

from __future__ import annotations

from pathlib import Path

from voltx.planning.input_routes import THIS_MACHINE, reader_of, remote_document
from voltx.results import ManifestEntry
from voltx.routing import resolve_routing
from voltx.session import ProjectConfig, open_session


def manifest(
    phase_id: str, *, store: str | None = None, config: ProjectConfig = None
) -> list[ManifestEntry]:
    """What a phase needs on its host: each input, its size, and where it comes from."""
    session = open_session(store=store, config=config)
    spec = session.registry.phase(phase_id)
    entries: list[ManifestEntry] = []
    for name in (*spec.requires, *spec.optional):
        optional = name in spec.optional
        digest = session.store.ref(name)
        producer = session.graph.producer.get(name)
        remote = remote_document(session, name) if producer is None else None
        if remote is not None:
            # A URL input: listed by its files, read by the phase's host from their URLs.
            routed = resolve_routing(
                session.project.routing, [spec], session.profile, session.backend
            )
            reader = reader_of(routed.backend_for(phase_id))
            said = f"read by {reader} from its URL"
            said += "" if reader == THIS_MACHINE else f"; 0 B through {THIS_MACHINE}"
            entries.extend(
                ManifestEntry(name, f.url, f.size, said, None, optional) for f in remote.files
            )
        elif digest is not None:
            artifact = session.store.load_manifest(digest)
            made_by = artifact.lineage.get("phase")
            source = f"phase {made_by}" if made_by else f"added ({artifact.lineage.get('source')})"
            entries.extend(
                ManifestEntry(name, f.path, f.size, source, digest[:12], optional)
                for f in artifact.files
            )
        elif name in session.project.inputs:
            path = Path(session.project.inputs[name])
            size = path.stat().st_size if path.is_file() else None
            entries.append(
                ManifestEntry(name, str(path), size, "[inputs] in voltx.toml", None, optional)
            )
        else:
            source = f"phase {producer} (not run yet)" if producer else "missing"
            entries.append(ManifestEntry(name, "-", None, source, None, optional))
    return entries
