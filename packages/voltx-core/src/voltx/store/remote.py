"""Inputs given by URL: what identifies a remote file's current version, read without its bytes.

A URL input (``https://``, ``s3://``, ``gs://``, ``hf://``: any fsspec protocol installed) is kept
in the store as a `RemoteInput` document, never as its bytes: the URL, and for each file its size
and the identity the remote reports (ETag, Last-Modified, an object version id, a Hugging Face
blob id or commit). The document is the input artifact's one file, so its digest changes exactly
when the remote does, and fingerprints, refs, gc and transfers treat it like any other artifact.
Probing costs one listing or ``info`` per file; the phase's host reads the bytes
(`voltx.remote_inputs`). See `docs/inputs.md`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from voltx._logging import redact_text
from voltx.config import structure, unstructure
from voltx.errors import ConfigError, InputUnreachableError, ManifestError

REMOTE_FORMAT = "voltx-remote-input"
REMOTE_VERSION = 1
# The name of the document inside its artifact; `is_remote_artifact` recognises it by this and
# the lineage mark, so a user file that happens to share the name is not mistaken for one.
REMOTE_FILE = "voltx-remote-input.json"
LINEAGE_MARK = "remote_input"
_GLOB_CHARS = frozenset("*?[")
# A URL's query (``?versionId=...`` on S3) is not a wildcard "?".
_QUERY = re.compile(r"\?[A-Za-z_]+=[^/]*$")
# What `info` returns that names a version of a file, by protocol: HTTP headers, S3 and GCS
# object metadata, Hugging Face's blob id and LFS pointer. Times alone are a weak identity, so
# they are kept beside the strong ones rather than instead of them.
_IDENTITY_KEYS = (
    "ETag",
    "etag",
    "VersionId",
    "version_id",
    "generation",
    "md5Hash",
    "crc32c",
    "Content-MD5",
    "Digest",
    "blob_id",
    "lfs",
    "last_commit",
    "Last-Modified",
    "LastModified",
    "last_modified",
    "updated",
    "mtime",
)


def is_url(location: str) -> bool:
    """Whether an ``[inputs]`` value or an ``artifacts add`` argument names a remote location."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


@attrs.frozen
class RemoteFile:
    """One file of a URL input: where it is, its path inside the input, size, version identity."""

    path: str
    url: str
    size: int | None = None
    identity: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RemoteInput:
    """What a URL input is now: its files and their identities; `sha256` is the pinned digest."""

    url: str
    kind: str = attrs.field(validator=attrs.validators.in_(("file", "folder")))
    files: tuple[RemoteFile, ...]
    sha256: str | None = None
    # For http(s): the environment variable whose value is sent as a bearer token (its name only).
    token_env: str | None = None
    format: str = REMOTE_FORMAT
    version: int = REMOTE_VERSION

    @property
    def size(self) -> int | None:
        """Bytes in all, or None when the remote does not say for some file."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def to_json(self) -> bytes:
        """Canonical bytes: the same remote state always gives the same document and digest."""
        return json.dumps(unstructure(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes, source: str, store: str) -> RemoteInput:
        """The strict reader; a damaged or foreign document is a ManifestError naming it."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ManifestError(source, store, f"not JSON ({exc})") from None
        if not isinstance(data, Mapping) or data.get("format") != REMOTE_FORMAT:
            raise ManifestError(source, store, f"not a {REMOTE_FORMAT} document")
        if data.get("version") != REMOTE_VERSION:
            version = data.get("version")
            raise ManifestError(source, store, f"version {version!r} is not {REMOTE_VERSION}")
        try:
            document: RemoteInput = structure(cls, data, path="remote_input")
        except ConfigError as exc:
            raise ManifestError(source, store, "; ".join(exc.problems)) from None
        return document


def open_url(name: str, url: str, token_env: str | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path of `url`; a protocol whose package is missing is named.

    Other protocols find their credentials in the environment themselves (``AWS_*``,
    ``HF_TOKEN``, ``GOOGLE_APPLICATION_CREDENTIALS``); plain HTTP has no such convention, so
    `token_env` names the variable whose value goes as ``Authorization: Bearer``.
    """
    import fsspec.core

    options: dict[str, Any] = {}
    token = os.environ.get(token_env) if token_env else None
    if token and url.startswith(("http://", "https://")):
        options["headers"] = {"Authorization": f"Bearer {token}"}
    if url.startswith("s3://") and "versionId=" in url:
        # A pinned object version: s3fs reads one only when asked to be version aware.
        options["version_aware"] = True
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise InputUnreachableError(name, url, f"cannot open this protocol here ({exc})") from None
    return fs, path


def probe(
    name: str, url: str, sha256: str | None = None, token_env: str | None = None
) -> RemoteInput:
    """The current identity of the file, folder or glob at `url` (one listing or info per file).

    An unreachable URL (not found, refused credentials, no route) is an InputUnreachableError
    naming the input, in one line.
    """
    fs, path = open_url(name, url, token_env)
    try:
        # fsspec keeps one filesystem per protocol and options, with its listings cached: a
        # probe must see the remote as it is now, not as an earlier probe listed it.
        fs.invalidate_cache()
        if _is_glob(path):
            found = fs.glob(path, detail=True)
            base = _glob_base(path)
            kind = "folder"
        else:
            info = fs.info(path)
            if info.get("type") == "directory":
                found, base, kind = fs.find(path, detail=True), path.rstrip("/"), "folder"
            else:
                found, base, kind = {path: info}, path, "file"
    except Exception as exc:  # each protocol raises its own; all mean "cannot reach it"
        raise InputUnreachableError(name, url, unreachable_reason(exc)) from None
    files = [
        _remote_file(fs, url if kind == "file" else None, p, base, info)
        for p, info in sorted(found.items())
        if info.get("type", "file") != "directory"
    ]
    if not files:
        raise InputUnreachableError(name, url, "matches no files")
    if sha256 is not None and kind != "file":
        raise InputUnreachableError(
            name, url, "a pinned sha256 needs a single file; pin a folder by a revision in its URL"
        )
    return RemoteInput(url=url, kind=kind, files=tuple(files), sha256=sha256, token_env=token_env)


def unreachable_reason(exc: BaseException) -> str:
    """Why a URL could not be read, in words: 404, a refused credential, or the error itself."""
    # fsspec's HTTP filesystem turns every failed request into FileNotFoundError, keeping the
    # response's status on the cause: look down the chain before believing "not found".
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(chain) < 8:
        chain.append(link)
        link = link.__cause__ or link.__context__
    statuses = [s for e in chain if isinstance(s := getattr(e, "status", None), int)]
    refused = [s for s in statuses if s in (401, 403)]
    if refused or any(isinstance(e, PermissionError) for e in chain):
        shown = f"HTTP {refused[0]}" if refused else type(exc).__name__
        return f"credential refused ({shown}); check the credential its env or token_env names"
    if 404 in statuses or isinstance(exc, FileNotFoundError):
        return "not found (404)"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # An error message may repeat a signed URL or a header; registered secrets never show.
    return redact_text(f"{type(exc).__name__}: {message}")


def _remote_file(
    fs: Any, url: str | None, path: str, base: str, info: Mapping[str, Any]
) -> RemoteFile:
    relative = path[len(base) :].lstrip("/") if path.startswith(base) and path != base else ""
    size = info.get("size")
    identity = {key: _text(info[key]) for key in _IDENTITY_KEYS if info.get(key) is not None}
    return RemoteFile(
        path=relative or _QUERY.sub("", path).rstrip("/").rsplit("/", 1)[-1],
        url=url or fs.unstrip_protocol(path),
        size=int(size) if isinstance(size, int | float) else None,
        identity=identity,
    )


def _is_glob(path: str) -> bool:
    """Whether `path` has wildcards, a query such as ``?versionId=...`` aside."""
    return bool(_GLOB_CHARS & set(_QUERY.sub("", path)))


def _glob_base(path: str) -> str:
    """The folder part of a glob before its first wildcard: member paths are relative to it."""
    head = path[: min(path.index(c) for c in _GLOB_CHARS if c in path)]
    return head.rsplit("/", 1)[0] if "/" in head else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
