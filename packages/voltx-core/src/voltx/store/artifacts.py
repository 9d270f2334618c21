"""The artifact store: content-addressed blobs, create-only manifests, named refs, records.

Layout under the root (a folder, ``memory://``, ``s3://``...)::

    blobs/sha256/ab/<digest>   file contents, immutable
    manifests/<digest>.json    what an artifact is: its files, sizes, digests and lineage
    refs/<name>.json           the current digest of a name
    records/...                fingerprints and run ledgers, small JSON documents
    tmp/                       staging for local writes

A commit writes the blobs, then the manifest (create-only), then the ref. A reader starts from a
ref or a manifest, so data that a crash left without a manifest is never seen; `gc` removes it.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx._logging import redact
from voltx.errors import (
    ArtifactNotFoundError,
    IntegrityError,
    SourceFileError,
    StoreError,
)
from voltx.store._backing import Backing, open_backing
from voltx.store._hashing import HashCache, folder_digest, sha256_file
from voltx.store.names import check_member_path, check_name, is_digest

MANIFEST_FORMAT = "voltx-artifact/1"
# Staging files older than this belong to a writer that died; gc may remove them.
_STALE_STAGING_S = 3600


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@attrs.frozen
class FileEntry:
    """One file of an artifact."""

    path: str
    size: int
    sha256: str


@attrs.frozen
class Artifact:
    """A committed artifact, as its manifest describes it."""

    digest: str
    kind: str  # "file" or "folder"
    files: tuple[FileEntry, ...]
    name: str
    lineage: Mapping[str, Any]
    created_at: str

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def short(self) -> str:
        return self.digest[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "digest": self.digest,
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "files": [attrs.asdict(entry) for entry in self.files],
            "lineage": dict(self.lineage),
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        if data.get("format") != MANIFEST_FORMAT:
            raise IntegrityError(f"manifest of unknown format {data.get('format')!r}")
        files = tuple(
            FileEntry(check_member_path(str(f["path"])), int(f["size"]), str(f["sha256"]))
            for f in data["files"]
        )
        return cls(
            digest=str(data["digest"]),
            kind=str(data["kind"]),
            files=files,
            name=str(data["name"]),
            lineage=dict(data.get("lineage", {})),
            created_at=str(data.get("created_at", "")),
        )


@attrs.frozen
class GcReport:
    """What `gc` removed (or would remove, on a dry run)."""

    manifests: tuple[str, ...]
    blobs: tuple[str, ...]
    staging: tuple[str, ...]
    freed_bytes: int


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def _manifest_path(digest: str) -> str:
    return f"manifests/{digest}.json"


def _ref_path(name: str) -> str:
    return f"refs/{check_name(name)}.json"


# Top-level folders for files that are not artifacts: they never hold blobs, manifests or refs,
# and `gc` leaves them alone.
LOOSE_AREAS = frozenset({"checkpoints"})


def _loose_path(path: str) -> str:
    check_member_path(path)
    if path.split("/", 1)[0] not in LOOSE_AREAS:
        raise StoreError(
            f"{path!r} is outside the store's loose-file areas ({', '.join(LOOSE_AREAS)})"
        )
    return path


class ArtifactStore:
    """Artifacts addressed by name or digest, in a store at `url`."""

    def __init__(self, backing: Backing, hash_cache: HashCache | None = None) -> None:
        self._backing = backing
        self._hash_cache = hash_cache or HashCache()

    @classmethod
    def open(cls, url: str, **storage_options: Any) -> ArtifactStore:
        """Open (creating if needed) the store at an fsspec URL or a local path."""
        try:
            return cls(open_backing(url, **storage_options))
        except (OSError, ValueError, ImportError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc

    @property
    def url(self) -> str:
        return self._backing.url

    @property
    def local_root(self) -> Path | None:
        """The store's folder when it is on this machine (jobs and checkpoints go beside it)."""
        return self._backing.local_root

    # -- writing ---------------------------------------------------------------------------

    def commit(
        self, name: str, source: Path, lineage: Mapping[str, Any], *, use_hash_cache: bool = False
    ) -> Artifact:
        """Store a file or folder as `name`: blobs, then manifest (create-only), then ref."""
        check_name(name)
        entries, kind = self._scan(source, use_hash_cache)
        digest = entries[0][2] if kind == "file" else folder_digest(entries)
        for relative, _size, file_digest in entries:
            blob = _blob_path(file_digest)
            if not self._backing.exists(blob):
                local = source if kind == "file" else source / relative
                self._backing.put_file(local, blob)
        artifact = Artifact(
            digest=digest,
            kind=kind,
            files=tuple(FileEntry(path, size, d) for path, size, d in entries),
            name=name,
            lineage=redact(dict(lineage)),
            created_at=utc_now(),
        )
        manifest = json.dumps(artifact.to_json(), indent=1, sort_keys=True).encode()
        # Same content committed before: that manifest stands (content is what it describes).
        self._backing.create(_manifest_path(digest), manifest)
        self.set_ref(name, digest)
        return attrs.evolve(self.load_manifest(digest), name=name)

    def add(self, name: str, path: Path) -> Artifact:
        """Add an outside file or folder as a source artifact named `name`."""
        check_name(name)
        if not path.exists():
            raise SourceFileError(str(path), "no such file or folder")
        lineage = {"source": str(path.resolve()), "phase": None, "added_at": utc_now()}
        return self.commit(name, path, lineage, use_hash_cache=True)

    def set_ref(self, name: str, digest: str) -> None:
        """Point `name` at a committed artifact."""
        if not self._backing.exists(_manifest_path(digest)):
            raise ArtifactNotFoundError(digest)
        record = {"name": name, "digest": digest, "updated_at": utc_now()}
        self._backing.write_bytes(_ref_path(name), json.dumps(record).encode())

    def _scan(
        self, source: Path, use_hash_cache: bool
    ) -> tuple[builtins.list[tuple[str, int, str]], str]:
        def digest_of(path: Path) -> str:
            return self._hash_cache.sha256(path) if use_hash_cache else sha256_file(path)

        try:
            if source.is_file():
                entry = (check_member_path(source.name), source.stat().st_size, digest_of(source))
                return [entry], "file"
            if not source.is_dir():
                raise SourceFileError(str(source), "no such file or folder")
            entries = []
            for path in sorted(source.rglob("*")):
                if path.is_symlink():
                    raise SourceFileError(str(path), "symbolic links cannot be stored")
                if path.is_file():
                    relative = check_member_path(path.relative_to(source).as_posix())
                    entries.append((relative, path.stat().st_size, digest_of(path)))
        except PermissionError as exc:
            raise SourceFileError(str(exc.filename or source), "permission denied") from exc
        if not entries:
            raise SourceFileError(str(source), "folder is empty; nothing to store")
        return entries, "folder"

    # -- reading ---------------------------------------------------------------------------

    def load_manifest(self, digest: str) -> Artifact:
        """The artifact with this digest; ArtifactNotFoundError when none is committed."""
        try:
            data = json.loads(self._backing.read_bytes(_manifest_path(digest)))
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(digest) from exc
        artifact = Artifact.from_json(data)
        if artifact.digest != digest:
            raise IntegrityError(
                f"manifest {digest[:12]} describes artifact {artifact.digest[:12]} instead"
            )
        return artifact

    def ref(self, name: str) -> str | None:
        """The digest `name` points at, or None."""
        try:
            record = json.loads(self._backing.read_bytes(_ref_path(name)))
        except FileNotFoundError:
            return None
        return str(record["digest"])

    def resolve(self, name_or_digest: str) -> Artifact:
        """The artifact a name, a digest, or a unique digest prefix (8+ chars) refers to."""
        if is_digest(name_or_digest):
            return self.load_manifest(name_or_digest)
        digest = self.ref(name_or_digest)
        if len(name_or_digest) >= 8 and all(c in "0123456789abcdef" for c in name_or_digest):
            matches = [d for d in self._manifest_digests() if d.startswith(name_or_digest)]
            if len(matches) == 1:
                return self.load_manifest(matches[0])
            if len(matches) > 1 and digest is None:
                raise StoreError(
                    f"digest prefix {name_or_digest!r} is ambiguous: it matches"
                    f" {len(matches)} artifacts; give more characters"
                )
        if digest is None:
            raise ArtifactNotFoundError(name_or_digest, self.names())
        # The manifest keeps the name it was first committed under; this ref's name is the answer.
        return attrs.evolve(self.load_manifest(digest), name=name_or_digest)

    def has(self, name: str) -> bool:
        """True when `name` refers to a committed artifact."""
        digest = self.ref(name)
        return digest is not None and self._backing.exists(_manifest_path(digest))

    def names(self) -> builtins.list[str]:
        """Every ref name."""
        return [
            path.removeprefix("refs/").removesuffix(".json")
            for path in self._backing.list_files("refs")
            if path.endswith(".json")
        ]

    def list(self) -> list[Artifact]:
        """The artifact each ref points at, by name (refs whose manifest is gone are left out)."""
        found = []
        for name in self.names():
            digest = self.ref(name)
            if digest is None:
                continue
            try:
                artifact = self.load_manifest(digest)
            except ArtifactNotFoundError:
                continue
            found.append(attrs.evolve(artifact, name=name))
        return found

    def get(self, name_or_digest: str, dest: Path, *, link: bool = False) -> Path:
        """Write an artifact out: a file artifact to `dest` (or into it, if a folder)."""
        artifact = self.resolve(name_or_digest)
        if artifact.kind == "file":
            entry = artifact.files[0]
            target = dest / entry.path if dest.is_dir() else dest
            self._fetch(entry, target, link)
            return target
        dest.mkdir(parents=True, exist_ok=True)
        for entry in artifact.files:
            self._fetch(entry, dest / check_member_path(entry.path), link)
        return dest

    def _fetch(self, entry: FileEntry, target: Path, link: bool) -> None:
        blob = _blob_path(entry.sha256)
        if not self._backing.exists(blob):
            raise IntegrityError(f"blob {entry.sha256[:12]} of {entry.path!r} is missing")
        if target.exists():
            target.unlink()
        self._backing.get_file(blob, target, link=link)
        size = target.stat().st_size
        if size != entry.size:
            target.unlink()
            raise IntegrityError(f"{entry.path}: expected {entry.size} bytes, got {size}")

    def verify(self, name_or_digest: str) -> Artifact:
        """Re-hash every blob of an artifact; IntegrityError on the first mismatch."""
        artifact = self.resolve(name_or_digest)
        for entry in artifact.files:
            data = self._backing.read_bytes(_blob_path(entry.sha256))
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise IntegrityError(f"{artifact.name}/{entry.path}: content does not match")
        return artifact

    def _manifest_digests(self) -> builtins.list[str]:
        return [
            path.removeprefix("manifests/").removesuffix(".json")
            for path in self._backing.list_files("manifests")
        ]

    # -- records (fingerprints, ledgers) ---------------------------------------------------

    def write_record(self, path: str, data: Mapping[str, Any], *, create: bool = False) -> bool:
        """Write a small JSON document under ``records/``; `create` refuses to overwrite."""
        payload = json.dumps(redact(dict(data)), sort_keys=True).encode()
        rel = f"records/{check_member_path(path)}"
        if create:
            return self._backing.create(rel, payload)
        self._backing.write_bytes(rel, payload)
        return True

    def read_record(self, path: str) -> dict[str, Any] | None:
        """A JSON document written by `write_record`, or None."""
        try:
            data = json.loads(self._backing.read_bytes(f"records/{check_member_path(path)}"))
        except FileNotFoundError:
            return None
        return dict(data)

    def delete_record(self, path: str) -> None:
        """Remove a record written by `write_record` (missing is fine)."""
        self._backing.delete(f"records/{check_member_path(path)}")

    def list_records(self, prefix: str) -> builtins.list[str]:
        """Paths (relative to ``records/``) of the documents under `prefix`."""
        return [
            path.removeprefix("records/")
            for path in self._backing.list_files(f"records/{check_member_path(prefix)}")
        ]

    def iter_records(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path, document) for each record under `prefix`, in path order."""
        for path in self.list_records(prefix):
            record = self.read_record(path)
            if record is not None:
                yield path, record

    # -- loose files (checkpoint mirrors) --------------------------------------------------

    def put_file(self, path: str, source: Path) -> None:
        """Copy `source` to `path` (under a loose-file area such as ``checkpoints/``)."""
        self._backing.put_file(source, _loose_path(path))

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` in one step (readers see the old or the new content)."""
        self._backing.write_bytes(_loose_path(path), data)

    def read_bytes(self, path: str) -> bytes | None:
        """The content of a loose file, or None when it is absent."""
        try:
            return self._backing.read_bytes(_loose_path(path))
        except FileNotFoundError:
            return None

    def fetch_file(self, path: str, dest: Path) -> Path:
        """Copy a loose file to `dest`; StoreError when it is absent."""
        try:
            self._backing.get_file(_loose_path(path), dest, link=False)
        except FileNotFoundError:
            raise StoreError(f"{path} is not in store {self.url}") from None
        return dest

    def has_file(self, path: str) -> bool:
        return self._backing.exists(_loose_path(path))

    def list_files(self, prefix: str) -> builtins.list[str]:
        """Loose files under the folder `prefix`, as store paths."""
        return self._backing.list_files(_loose_path(prefix))

    def delete_file(self, path: str) -> None:
        """Remove a loose file (missing is fine)."""
        self._backing.delete(_loose_path(path))

    # -- garbage collection ----------------------------------------------------------------

    def gc(self, *, dry_run: bool = False, keep_digests: frozenset[str] = frozenset()) -> GcReport:
        """Remove manifests no ref or record points at, then blobs no manifest covers.

        Stale staging files (a writer died mid-copy) go too.
        """
        referenced = set(keep_digests)
        for name in self.names():
            digest = self.ref(name)
            if digest:
                referenced.add(digest)
        for _path, record in self.iter_records("fingerprints"):
            referenced.update(str(d) for d in record.get("outputs", {}).values())
        doomed_manifests = [d for d in self._manifest_digests() if d not in referenced]
        live_blobs: set[str] = set()
        for digest in self._manifest_digests():
            if digest in doomed_manifests:
                continue
            live_blobs.update(entry.sha256 for entry in self.load_manifest(digest).files)
        doomed_blobs = [
            path
            for path in self._backing.list_files("blobs")
            if path.rsplit("/", 1)[-1] not in live_blobs
        ]
        staging = self._stale_staging()
        freed = sum(self._backing.size(path) for path in doomed_blobs)
        if not dry_run:
            # Manifests first: a reader must never find a manifest whose blobs are gone.
            for digest in doomed_manifests:
                self._backing.delete(_manifest_path(digest))
            for path in (*doomed_blobs, *staging):
                self._backing.delete(path)
        return GcReport(tuple(doomed_manifests), tuple(doomed_blobs), tuple(staging), freed)

    def _stale_staging(self) -> builtins.list[str]:
        root = self.local_root
        if root is None:
            return []
        cutoff = time.time() - _STALE_STAGING_S
        stale = []
        for path in self._backing.list_files("tmp"):
            try:
                if (root / path).stat().st_mtime < cutoff:
                    stale.append(path)
            except FileNotFoundError:
                continue  # a live writer renamed it into place while we looked
        return stale

    # -- local helpers ---------------------------------------------------------------------

    def local_dir(self, *parts: str, create: bool = True) -> Path | None:
        """A folder beside the store's data (checkpoints, job folders), when the store is local.

        With ``create=False`` the path is only named: whoever writes there first makes it.
        """
        root = self.local_root
        if root is None:
            return None
        folder = root.joinpath(*parts)
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder
