"""What an artifact is (its manifest), and the one reader of manifests and refs.

A manifest is JSON written once, at commit, and read by every process that uses the artifact; a
ref is a small JSON pointer from a name to a digest. Both may be damaged on disk (a truncated
copy, an edited file), so the reader checks every field's type and answers with a one-line
`ManifestError` naming the file, never with a `JSONDecodeError` or a `KeyError`. The format is
described in `docs/formats.md`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from voltx.errors import IntegrityError, ManifestError, StoreError
from voltx.store.names import check_member_path, is_digest

MANIFEST_FORMAT = "voltx-artifact/1"
ARTIFACT_KINDS = ("file", "folder")


@attrs.frozen
class FileEntry:
    """One file of an artifact."""

    path: str
    size: int
    sha256: str
    # BLAKE3 of the same bytes, recorded at commit since reads are checked with it (it hashes
    # several times faster); None in manifests written before, which are checked by sha256.
    blake3: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.blake3 is not None:
            fields["blake3"] = self.blake3
        return fields


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
            "files": [entry.to_json() for entry in self.files],
            "lineage": dict(self.lineage),
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> Artifact:
        """The artifact a decoded manifest describes; IntegrityError (one line) when not one."""
        if not isinstance(data, Mapping):
            raise IntegrityError(f"a manifest is a JSON object, not {_kind_of(data)}")
        if data.get("format") != MANIFEST_FORMAT:
            raise IntegrityError(f"manifest of unknown format {_shown(data.get('format'))}")
        files = data.get("files")
        if not isinstance(files, list) or not files:
            raise IntegrityError("manifest field 'files' must be a non-empty list")
        lineage = data.get("lineage", {})
        if not isinstance(lineage, Mapping):
            raise IntegrityError(
                f"manifest field 'lineage' must be an object, not {_kind_of(lineage)}"
            )
        kind = _text(data, "kind")
        if kind not in ARTIFACT_KINDS:
            raise IntegrityError(
                f"manifest field 'kind' must be 'file' or 'folder', not {_shown(kind)}"
            )
        created_at = data.get("created_at", "")
        return cls(
            digest=_digest(data, "digest"),
            kind=kind,
            files=tuple(_file_entry(index, entry) for index, entry in enumerate(files)),
            name=_text(data, "name"),
            lineage=dict(lineage),
            created_at=created_at if isinstance(created_at, str) else str(created_at),
        )


def parse_manifest(raw: bytes, file: str, store: str) -> Artifact:
    """The artifact in a manifest file's bytes; ManifestError naming `file` when unreadable."""
    try:
        return Artifact.from_json(json.loads(raw))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ManifestError(file, store, f"not valid JSON ({_first_line(exc)})") from None
    except StoreError as exc:
        raise ManifestError(file, store, str(exc)) from None


def parse_ref(raw: bytes, file: str, store: str) -> str:
    """The digest a ref file points at; ManifestError naming `file` when unreadable."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(file, store, f"not valid JSON ({_first_line(exc)})") from None
    if not isinstance(data, Mapping):
        raise ManifestError(file, store, f"a ref is a JSON object, not {_kind_of(data)}")
    try:
        return _digest(data, "digest")
    except StoreError as exc:
        raise ManifestError(file, store, str(exc)) from None


def parse_record(raw: bytes, file: str, store: str) -> dict[str, Any]:
    """A JSON object record (fingerprints, ledgers); ManifestError naming `file` when unreadable."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(file, store, f"not valid JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise ManifestError(file, store, f"a record is a JSON object, not {_kind_of(data)}")
    return data


def _file_entry(index: int, entry: Any) -> FileEntry:
    if not isinstance(entry, Mapping):
        raise IntegrityError(f"manifest files[{index}] must be an object, not {_kind_of(entry)}")
    size = entry.get("size")
    # bool is an int in Python; a size of `true` is a damaged manifest all the same.
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(
            f"manifest files[{index}].size must be a whole number >= 0, not {_shown(size)}"
        )
    path = entry.get("path")
    if not isinstance(path, str):
        raise IntegrityError(f"manifest files[{index}].path must be a string, not {_kind_of(path)}")
    where = f"files[{index}]."
    blake3 = None
    if "blake3" in entry:
        blake3 = _digest(entry, "blake3", where)
    return FileEntry(check_member_path(path), size, _digest(entry, "sha256", where), blake3)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise IntegrityError(f"manifest field {key!r} must be a string, not {_kind_of(value)}")
    return value


def _digest(data: Mapping[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not is_digest(value):
        shown = value if isinstance(value, str) and len(value) < 80 else _kind_of(value)
        algorithm = "blake3" if key == "blake3" else "sha256"
        raise IntegrityError(f"field {where}{key} must be a {algorithm} hex digest, not {shown!r}")
    return value


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short (a damaged file may hold MBs)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_of(value: Any) -> str:
    if value is None:
        return "missing"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
