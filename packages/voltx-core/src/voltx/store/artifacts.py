"""The artifact store: content-addressed blobs, create-only manifests, named refs, records.

Layout under the root (a folder, ``memory://``, ``s3://``...)::

    blobs/sha256/ab/<digest>   file contents, immutable
    manifests/<digest>.json    what an artifact is: its files, sizes, digests and lineage
    refs/<name>.json           the current digest of a name
    records/...                fingerprints and run ledgers, small JSON documents
    tmp/                       staging for local writes
    quarantine/<stamp>/        what `voltx artifacts repair` moved aside, with record.json

A commit writes the blobs, then the manifest (create-only), then the ref. A reader starts from a
ref or a manifest, so data that a crash left without a manifest is never seen; `gc` removes it.
Every blob read is hashed as it streams and checked against the manifest (`_verified`), and
manifests, refs and records are parsed by one checking reader (`manifest`), so damage is a
one-line error naming the file, never data passed on.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx._logging import redact
from voltx.errors import (
    ArtifactNotFoundError,
    CorruptBlobError,
    IntegrityError,
    ManifestError,
    SourceFileError,
    StoreError,
)
from voltx.store._backing import Backing, open_backing
from voltx.store._export import write_out
from voltx.store._hashing import HashCache, file_digests, folder_digest
from voltx.store._layout import (
    DATA_AREAS,
    LOOSE_AREAS,
    blob_path,
    loose_path,
    manifest_path,
    ref_path,
)
from voltx.store._verified import (
    Checked,
    algorithm_for,
    copy_checked,
    hash_chunks,
    install,
    partial_path,
)
from voltx.store.gc import GcReport, collect_garbage
from voltx.store.manifest import (
    MANIFEST_FORMAT,
    Artifact,
    FileEntry,
    parse_manifest,
    parse_record,
    parse_ref,
)
from voltx.store.names import check_member_path, check_name, is_digest

__all__ = [
    "DATA_AREAS",
    "LOOSE_AREAS",
    "MANIFEST_FORMAT",
    "Artifact",
    "ArtifactStore",
    "FileEntry",
    "GcReport",
    "utc_now",
]


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
        digest = entries[0][2] if kind == "file" else folder_digest(e[:3] for e in entries)
        for relative, size, file_digest, _ in entries:
            blob = blob_path(file_digest)
            # A blob already there is reused only when its bytes are right: committing the same
            # content again (`voltx run <id> --force`) is how a damaged blob gets repaired.
            if not self._blob_is_sound(file_digest, size):
                local = source if kind == "file" else source / relative
                self._backing.put_file(local, blob)
        artifact = Artifact(
            digest=digest,
            kind=kind,
            files=tuple(FileEntry(*entry) for entry in entries),
            name=name,
            lineage=redact(dict(lineage)),
            created_at=utc_now(),
        )
        manifest = json.dumps(artifact.to_json(), indent=1, sort_keys=True).encode()
        # Same content committed before: that manifest stands (content is what it describes),
        # unless it no longer reads as one, in which case this commit replaces it.
        if not self._backing.create(manifest_path(digest), manifest):
            try:
                self.load_manifest(digest)
            except ManifestError:
                self._backing.write_bytes(manifest_path(digest), manifest)
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
        if not self._backing.exists(manifest_path(digest)):
            raise ArtifactNotFoundError(digest)
        record = {"name": name, "digest": digest, "updated_at": utc_now()}
        self._backing.write_bytes(ref_path(name), json.dumps(record).encode())

    def _blob_is_sound(self, digest: str, size: int) -> bool:
        """Whether the blob is there with exactly the bytes its digest names (read once)."""
        blob = blob_path(digest)
        try:
            if self._backing.size(blob) != size:
                return False
            return hash_chunks(self._backing.read_chunks(blob)).mismatch(digest, size) is None
        except FileNotFoundError:
            return False

    def _scan(
        self, source: Path, use_hash_cache: bool
    ) -> tuple[builtins.list[tuple[str, int, str, str]], str]:
        def digest_of(path: Path) -> tuple[str, str]:
            # (sha256, BLAKE3): the content address, and the digest reads are checked with.
            if use_hash_cache:
                return self._hash_cache.sha256(path), self._hash_cache.blake3(path)
            return file_digests(path)

        try:
            if source.is_file():
                size = source.stat().st_size
                return [(check_member_path(source.name), size, *digest_of(source))], "file"
            if not source.is_dir():
                raise SourceFileError(str(source), "no such file or folder")
            entries = []
            for path in sorted(source.rglob("*")):
                if path.is_symlink():
                    raise SourceFileError(str(path), "symbolic links cannot be stored")
                if path.is_file():
                    relative = check_member_path(path.relative_to(source).as_posix())
                    entries.append((relative, path.stat().st_size, *digest_of(path)))
        except PermissionError as exc:
            raise SourceFileError(str(exc.filename or source), "permission denied") from exc
        if not entries:
            raise SourceFileError(str(source), "folder is empty; nothing to store")
        return entries, "folder"

    # -- reading ---------------------------------------------------------------------------

    def load_manifest(self, digest: str) -> Artifact:
        """The artifact with this digest; ArtifactNotFoundError when none is committed,
        ManifestError (naming the file) when its manifest does not read as one."""
        path = manifest_path(digest)
        try:
            raw = self._backing.read_bytes(path)
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(digest) from exc
        artifact = parse_manifest(raw, path, self.url)
        if artifact.digest != digest:
            raise ManifestError(
                path, self.url, f"it describes artifact {artifact.digest[:12]} instead"
            )
        return artifact

    def ref(self, name: str) -> str | None:
        """The digest `name` points at, or None; ManifestError when the ref file is damaged."""
        path = ref_path(name)
        try:
            raw = self._backing.read_bytes(path)
        except FileNotFoundError:
            return None
        return parse_ref(raw, path, self.url)

    def is_intact(self, digest: str) -> bool:
        """Whether an artifact is committed and every blob it lists is there at its size.

        Cheap (one size look-up per file, no hashing): what deciding "is this output still in
        the store" needs. Content is checked whenever it is read, and by `voltx artifacts verify`.
        """
        try:
            artifact = self.load_manifest(digest)
        except StoreError:
            return False
        try:
            return all(
                self._backing.size(blob_path(entry.sha256)) == entry.size
                for entry in artifact.files
            )
        except FileNotFoundError:
            return False

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
        """True when `name` refers to a committed artifact whose blobs are all there."""
        digest = self.ref(name)
        return digest is not None and self.is_intact(digest)

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

    def get(
        self, name_or_digest: str, dest: Path, *, link: bool = False, overwrite: bool = False
    ) -> Path:
        """Write an artifact out: a file artifact to `dest` (or into it, if a folder).

        Every byte is checked against the manifest as it is copied; a file that does not match
        is a `CorruptBlobError` and nothing is left at `dest`. An existing file at the target
        (or a non-empty folder, for a folder artifact) is a `DestinationExistsError` unless
        `overwrite`; a target inside the store's own data is always one.
        """
        return write_out(self, self.resolve(name_or_digest), dest, link=link, overwrite=overwrite)

    def contains(self, path: Path) -> bool:
        """Whether `path` is the store's folder or anywhere under it (local stores only)."""
        root = self.local_root
        return root is not None and path.resolve().is_relative_to(root)

    def check_blob(self, artifact: Artifact, entry: FileEntry, checked: Checked) -> None:
        """Raise CorruptBlobError, naming the artifact, file and store, unless `checked` is
        what the manifest entry says."""
        problem = checked.against(entry)
        if problem is not None:
            raise CorruptBlobError(artifact.name, entry.path, self.url, problem)

    def read_blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The raw bytes of a blob, unchecked: for `voltx.store.integrity` and transfers, which
        check them against the manifest themselves."""
        return self._backing.read_chunks(blob_path(digest))

    def verify(self, name_or_digest: str) -> Artifact:
        """Re-hash every blob of an artifact; CorruptBlobError on the first mismatch."""
        artifact = self.resolve(name_or_digest)
        for entry in artifact.files:
            try:
                chunks = self._backing.read_chunks(blob_path(entry.sha256))
                checked = hash_chunks(chunks, algorithm_for(entry))
            except FileNotFoundError:
                raise CorruptBlobError(
                    artifact.name, entry.path, self.url, f"its blob {entry.sha256[:12]} is missing"
                ) from None
            self.check_blob(artifact, entry, checked)
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
        """A JSON document written by `write_record`, or None; ManifestError when damaged."""
        rel = f"records/{check_member_path(path)}"
        try:
            raw = self._backing.read_bytes(rel)
        except FileNotFoundError:
            return None
        return parse_record(raw, rel, self.url)

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
        self._backing.put_file(source, loose_path(path))

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` in one step (readers see the old or the new content)."""
        self._backing.write_bytes(loose_path(path), data)

    def read_bytes(self, path: str) -> bytes | None:
        """The content of a loose file, or None when it is absent."""
        try:
            return self._backing.read_bytes(loose_path(path))
        except FileNotFoundError:
            return None

    def fetch_file(self, path: str, dest: Path, *, sha256: str | None = None) -> Path:
        """Copy a loose file to `dest`; StoreError when it is absent.

        With `sha256` (a checkpoint file's digest, from its step document) the bytes are hashed
        as they are copied and a mismatch is an IntegrityError that leaves nothing at `dest`.
        """
        rel = loose_path(path)
        try:
            if sha256 is None:
                self._backing.get_file(rel, dest, link=False)
                return dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = partial_path(dest)
            try:
                checked = copy_checked(self._backing.read_chunks(rel), partial)
                assert checked is not None
                if checked.hexdigest != sha256:
                    raise IntegrityError(
                        f"{path} in store {self.url}: content does not match its digest"
                        f" {sha256[:12]} (read {checked.hexdigest[:12]})"
                    )
                install(partial, dest)
            finally:
                partial.unlink(missing_ok=True)
        except FileNotFoundError:
            raise StoreError(f"{path} is not in store {self.url}") from None
        return dest

    def has_file(self, path: str) -> bool:
        return self._backing.exists(loose_path(path))

    def list_files(self, prefix: str) -> builtins.list[str]:
        """Loose files under the folder `prefix`, as store paths."""
        return self._backing.list_files(loose_path(prefix))

    def delete_file(self, path: str) -> None:
        """Remove a loose file (missing is fine)."""
        self._backing.delete(loose_path(path))

    # -- garbage collection ----------------------------------------------------------------

    def gc(self, *, dry_run: bool = False, keep_digests: frozenset[str] = frozenset()) -> GcReport:
        """Remove manifests no ref or record points at, then blobs no manifest covers.

        Stale staging files (a writer died mid-copy) go too. See `voltx.store.gc`.
        """
        return collect_garbage(self, dry_run=dry_run, keep_digests=keep_digests)

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
