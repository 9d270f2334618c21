"""Checking a whole store and repairing it: ``voltx artifacts verify`` and ``repair``.

    from voltx.store import ArtifactStore
    from voltx.store.integrity import check_store, repair_store

    store = ArtifactStore.open(".voltx")
    problems = check_store(store)                       # every problem, not just the first
    report = repair_store(store, source=ArtifactStore.open("s3://bucket/voltx"))

`check_store` reads every ref, manifest and record and hashes every blob once, and returns every
problem it found. `repair_store` fetches each damaged or missing file again from another store
(checked as it streams, like any read), and moves what it cannot fix to ``quarantine/<stamp>/``
in the store with a ``record.json`` saying why and which command re-creates it. After a
quarantine the store no longer claims the artifact, so the next ``voltx run`` re-creates it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from voltx.errors import ArtifactNotFoundError, ManifestError, StoreError
from voltx.store._layout import blob_path, ref_path
from voltx.store._verified import algorithm_for, hash_chunks
from voltx.store.artifacts import ArtifactStore, utc_now
from voltx.store.manifest import Artifact, FileEntry, parse_manifest, parse_record
from voltx.store.names import check_name
from voltx.store.transfer import copy_blob, staging_folder, transfer

QUARANTINE = "quarantine"


@attrs.frozen
class Problem:
    """One damaged file of a store."""

    file: str  # the store path: blobs/sha256/.., manifests/<digest>.json or refs/<name>.json
    reason: str
    artifact: str  # the name (or short digest) of the artifact it belongs to
    member: str | None = None  # the file's path inside the artifact, for a blob
    entry: FileEntry | None = None  # what the manifest says the blob is
    recreate: str | None = None  # the command that makes it again, when known

    def describe(self) -> str:
        what = f"{self.artifact}/{self.member}" if self.member else self.artifact
        return f"{what}: {self.file}: {self.reason}"


@attrs.frozen
class RepairReport:
    """What `repair_store` fixed, and what it moved aside (with where to)."""

    fixed: tuple[Problem, ...]
    quarantined: tuple[tuple[Problem, str], ...]
    unfixed: tuple[Problem, ...]  # missing blobs with no source: nothing to move, re-create them


def check_store(store: ArtifactStore, names: Sequence[str] | None = None) -> list[Problem]:
    """Every problem in the store's refs, manifests and blobs (or those of `names`)."""
    problems: list[Problem] = []
    wanted: dict[str, list[str]] = {}  # manifest digest -> the names that point at it
    if names:
        for name in names:
            try:
                # A name's ref is read without its manifest, which is checked below; a digest
                # (or prefix) must resolve. An unknown name fails before anything is checked.
                digest = store.ref(name) if _is_plain_name(name) else None
                if digest is None:
                    digest = store.resolve(name).digest
            except ManifestError as exc:
                problems.append(Problem(exc.file, exc.reason, name, recreate=_run(name)))
                continue
            wanted.setdefault(digest, []).append(name)
    else:
        problems += _record_problems(store)
        for name in store.names():
            try:
                digest = store.ref(name)
            except ManifestError as exc:
                problems.append(Problem(exc.file, exc.reason, name, recreate=_run(name)))
                continue
            if digest is not None:
                wanted.setdefault(digest, []).append(name)
        for digest in store._manifest_digests():
            wanted.setdefault(digest, [])
    checked: dict[str, str | None] = {}  # blob digest -> its problem, hashed once
    for digest, owners in wanted.items():
        label = owners[0] if owners else digest[:12]
        try:
            artifact = store.load_manifest(digest)
        except ArtifactNotFoundError:
            # Only a ref can name a manifest that is not there: the ref is what is wrong.
            problems += [
                Problem(
                    ref_path(name),
                    f"points at artifact {digest[:12]}, whose manifest is missing",
                    name,
                    recreate=_run(name),
                )
                for name in owners
            ]
            continue
        except ManifestError as exc:
            problems.append(Problem(exc.file, exc.reason, label, recreate=_run(label)))
            continue
        for entry in artifact.files:
            if entry.sha256 not in checked:
                checked[entry.sha256] = _blob_problem(store, entry)
            reason = checked[entry.sha256]
            if reason is not None:
                problems.append(
                    Problem(
                        blob_path(entry.sha256),
                        reason,
                        label,
                        member=entry.path,
                        entry=entry,
                        recreate=_recreate(artifact, label),
                    )
                )
    return problems


def _record_problems(store: ArtifactStore) -> list[Problem]:
    """Fingerprint and run records that do not parse (they are small: each is read whole)."""
    problems = []
    for path in store._backing.list_files("records"):
        try:
            parse_record(store._backing.read_bytes(path), path, store.url)
        except FileNotFoundError:
            continue  # removed while we looked (a run cleaning up)
        except ManifestError as exc:
            problems.append(Problem(path, exc.reason, "run records"))
    return problems


def _blob_problem(store: ArtifactStore, entry: FileEntry) -> str | None:
    try:
        chunks = store.read_blob_chunks(entry.sha256)
        return hash_chunks(chunks, algorithm_for(entry)).against(entry)
    except FileNotFoundError:
        return "blob is missing"


def repair_store(
    store: ArtifactStore,
    names: Sequence[str] | None = None,
    *,
    source: ArtifactStore | None = None,
) -> RepairReport:
    """Fix every problem `check_store` finds: from `source` where it holds a good copy, else by
    moving the damaged file to ``quarantine/`` (recorded), so the store stops claiming it.

    The store is checked again after each pass: a manifest moved aside leaves the refs that
    pointed at it dangling, and they are dealt with in the same call.
    """
    problems = check_store(store, names)
    fixed: list[Problem] = []
    quarantined: list[tuple[Problem, str]] = []
    unfixed: list[Problem] = []
    handled: set[str] = set()  # each file is dealt with once, so the passes end
    folder = f"{QUARANTINE}/{utc_now().replace(':', '')}-{uuid.uuid4().hex[:6]}"
    with staging_folder(store._backing) as staging:
        while fresh := [p for p in problems if p.file not in handled]:
            for problem in fresh:
                handled.add(problem.file)
                if source is not None and _refetch(store, source, problem, staging):
                    fixed.append(problem)
                    continue
                try:
                    store._backing.move(problem.file, f"{folder}/{problem.file}")
                except FileNotFoundError:
                    unfixed.append(problem)  # a missing blob: nothing to move aside
                    continue
                quarantined.append((problem, f"{folder}/{problem.file}"))
            try:
                problems = check_store(store, names)
            except ArtifactNotFoundError:
                break  # a named artifact's ref went to quarantine: nothing of it is left
    if quarantined:
        record = {
            "quarantined_at": utc_now(),
            "files": [
                {
                    "from": problem.file,
                    "artifact": problem.artifact,
                    "file": problem.member,
                    "reason": problem.reason,
                    "recreate": problem.recreate,
                }
                for problem, _where in quarantined
            ],
        }
        store._backing.write_bytes(f"{folder}/record.json", json.dumps(record, indent=1).encode())
    return RepairReport(tuple(fixed), tuple(quarantined), tuple(unfixed))


def _refetch(store: ArtifactStore, source: ArtifactStore, problem: Problem, staging: Any) -> bool:
    """Replace the damaged file with `source`'s copy when that one is sound."""
    try:
        if problem.entry is not None:
            # Hashed as it streams; it enters the store only when it matches the manifest.
            copy_blob(source._backing, store._backing, (problem.artifact, problem.entry), staging)
            return True
        if problem.file.startswith("refs/"):
            # The artifact the source's ref points at comes over whole (checked like any
            # transfer), then the ref is written without reading the damaged one.
            name = problem.file.removeprefix("refs/").removesuffix(".json")
            digest = source.ref(name)
            if digest is None:
                return False
            transfer(source, store, [digest])
            store.set_ref(name, digest)
            return store.is_intact(digest)
        raw = source._backing.read_bytes(problem.file)
        if not problem.file.startswith("manifests/"):
            return False  # run records are this store's own history: nothing to fetch
        parse_manifest(raw, problem.file, source.url)
    except (FileNotFoundError, StoreError):
        return False
    store._backing.write_bytes(problem.file, raw)
    return True


def _is_plain_name(name: str) -> bool:
    """Whether `name` could be a ref's name (digests and prefixes are looked up otherwise)."""
    try:
        check_name(name)
    except StoreError:
        return False
    return True


def _recreate(artifact: Artifact, label: str) -> str:
    phase = artifact.lineage.get("phase")
    if isinstance(phase, str) and phase:
        return f"voltx run {phase} --force"
    added_from = artifact.lineage.get("source")
    if isinstance(added_from, str) and added_from:
        return f"voltx artifacts add {label} {added_from}"
    return _run(label)


def _run(name: str) -> str:
    return f"voltx run {name} --force"


__all__ = ["QUARANTINE", "Problem", "RepairReport", "check_store", "repair_store"]
