"""URL inputs end to end: their ``[inputs]`` table, their record in the store, their credentials,
and the read on the phase's host.

The orchestrator only probes a URL (`voltx.store.remote.probe`: sizes and version identities) and
commits that small document as the input's artifact. The worker, on whatever machine runs the
phase, opens the URL itself through fsspec and streams the bytes into its job folder, hashing them
as they come: nothing passes through the orchestrating machine. A pinned sha256 that the bytes do
not match fails the phase before it starts, so nothing is committed. Credentials are named
environment variables whose values travel in the job's environment, as the store's do (never in
``job.json`` or any file). See `docs/inputs.md`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx._logging import add_secret
from voltx.config import expecting
from voltx.errors import InputUnreachableError, IntegrityError, RemoteInputMismatchError
from voltx.store import Artifact, ArtifactStore
from voltx.store._verified import hash_chunks
from voltx.store.artifacts import utc_now
from voltx.store.names import check_member_path
from voltx.store.remote import (
    LINEAGE_MARK,
    REMOTE_FILE,
    RemoteInput,
    open_url,
    probe,
    unreachable_reason,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHUNK = 4 << 20


def _sha256(_: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _SHA256.fullmatch(value):
        raise ValueError(f"{attribute.name}: expected 64 lowercase hex digits, got {value!r}")


def _env_names(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    bad = [name for name in value if not _ENV_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"{attribute.name}: not environment variable names: {bad}")


@attrs.frozen(kw_only=True)
class RemoteSource:
    """An ``[inputs]`` entry given by URL: ``name = "hf://..."`` or a table with these keys.

    `sha256` pins a single file's content; `env` names the environment variables its read needs
    (``HF_TOKEN``, ``AWS_ACCESS_KEY_ID``...): their values go to the phase's host with the job.
    `token_env` (http/https) names the variable whose value is sent as a bearer token.
    """

    url: str = attrs.field(metadata=expecting("a URL"))
    sha256: str | None = attrs.field(
        default=None, validator=_sha256, metadata=expecting("a sha256 hex digest")
    )
    env: tuple[str, ...] = attrs.field(
        default=(), validator=_env_names, metadata=expecting("a list of environment variable names")
    )
    token_env: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.matches_re(_ENV_NAME)),
        metadata=expecting("an environment variable name"),
    )

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable the read needs: `env`, and the token's."""
        return (*self.env, *([self.token_env] if self.token_env else []))

    def probe(self, name: str) -> RemoteInput:
        """What the URL holds now (`voltx.store.remote.probe`)."""
        return probe(name, self.url, self.sha256, self.token_env)


def document_digest(document: RemoteInput) -> str:
    """The digest the input's artifact has for this document (a file artifact's is its sha256)."""
    return hashlib.sha256(document.to_json()).hexdigest()


def current_digests(sources: Mapping[str, RemoteSource], names: Iterable[str]) -> dict[str, str]:
    """The digest each URL input among `names` would have now (probed, nothing committed), so a
    plan sees a changed remote as stale. An unreachable one is left out: preflight names it."""
    digests = {}
    for name in names:
        if name in sources:
            try:
                digests[name] = document_digest(sources[name].probe(name))
            except InputUnreachableError:
                continue
    return digests


def record_remote(
    store: ArtifactStore, name: str, source: RemoteSource, document: RemoteInput | None = None
) -> Artifact:
    """Commit the URL's identity (`document`, or a fresh probe) as artifact `name`: no bytes of
    the input itself."""
    document = document or source.probe(name)
    with tempfile.TemporaryDirectory(prefix="voltx-remote-") as folder:
        path = Path(folder) / REMOTE_FILE
        path.write_bytes(document.to_json())
        lineage = {"source": source.url, "phase": None, "added_at": utc_now(), LINEAGE_MARK: True}
        return store.commit(name, path, lineage)


def is_remote_artifact(artifact: Artifact) -> bool:
    """Whether an artifact is a URL input's identity document rather than data."""
    return (
        artifact.kind == "file"
        and len(artifact.files) == 1
        and artifact.files[0].path == REMOTE_FILE
        and artifact.lineage.get(LINEAGE_MARK) is True
    )


def read_document(store: ArtifactStore, artifact: Artifact) -> RemoteInput:
    """The URL input document of `artifact`, checked against its manifest like any blob read."""
    entry = artifact.files[0]
    chunks = list(store.read_blob_chunks(entry.sha256))
    store.check_blob(artifact, entry, hash_chunks(chunks))
    return RemoteInput.from_json(b"".join(chunks), f"{artifact.name}/{REMOTE_FILE}", store.url)


def credential_env(
    sources: Mapping[str, RemoteSource],
    names: Iterable[str],
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables the reads of `names` need, with this process's values, as secrets."""
    environ = os.environ if environ is None else environ
    env = {
        variable: environ[variable]
        for name in names
        if name in sources
        for variable in sources[name].variables
        if environ.get(variable)
    }
    for value in env.values():
        add_secret(value)  # a token is never logged, even by a verbose fsspec error
    return env


def missing_credentials(sources: Mapping[str, RemoteSource], names: Iterable[str]) -> list[str]:
    """One line per listed credential variable that is not set here."""
    return [
        f"inputs.{name}: environment variable {variable} (in its env) is not set"
        for name in names
        if name in sources
        for variable in sources[name].variables
        if not os.environ.get(variable)
    ]


@attrs.frozen
class UrlCheck:
    """What preflight learned by reaching the URL inputs: its problems, and the bytes each
    reachable one holds now (where the remote says)."""

    problems: list[str]
    sizes: dict[str, int]


def url_problems(sources: Mapping[str, RemoteSource], readers: Mapping[str, list[str]]) -> UrlCheck:
    """Preflight: one line per URL input (`readers` maps it to the phases reading it) that is
    unreachable with the credentials given here (not found, refused, unset variables)."""
    problems: list[str] = []
    sizes: dict[str, int] = {}
    for name, phases in sorted(readers.items()):
        if name not in sources:
            continue
        unset = missing_credentials(sources, [name])
        if unset:
            problems.extend(f"{line} (needed by {', '.join(phases)})" for line in unset)
            continue
        try:
            document = sources[name].probe(name)
        except InputUnreachableError as exc:
            problems.append(f"{exc} (needed by {', '.join(phases)})")
            continue
        if document.size is not None:
            sizes[name] = document.size
    return UrlCheck(problems, sizes)


def stored_size(store: ArtifactStore, artifact: Artifact) -> int:
    """The bytes an artifact puts on a job's disk: a URL input's remote size as last recorded
    (its identity document is a few hundred bytes), else the artifact's own."""
    if is_remote_artifact(artifact):
        return read_document(store, artifact).size or 0
    return artifact.size


def fetch_remote(name: str, document: RemoteInput, dest: Path) -> dict[str, Any]:
    """Stream the input's files from their URLs to `dest` (a file, or a folder of them).

    Returns what the phase's lineage records: the URL and each file's sha256. A file whose size
    changed since it was probed, or a pinned digest the bytes do not match, is an IntegrityError
    naming the input, and what was written is removed.
    """
    digests: dict[str, str] = {}
    for remote in document.files:
        target = dest if document.kind == "file" else dest / check_member_path(remote.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = _stream(name, remote.url, target, document.token_env)
        if remote.size is not None and size != remote.size:
            target.unlink(missing_ok=True)
            raise IntegrityError(
                f"input {name!r}: {remote.url} is {size} bytes now but was {remote.size} when"
                " planned; the remote changed during the run, run again to plan its new version"
            )
        digests[remote.path] = digest
    if document.sha256 is not None:
        got = digests[document.files[0].path]
        if got != document.sha256:
            dest.unlink(missing_ok=True)
            raise RemoteInputMismatchError(name, document.url, document.sha256, got)
    return {"url": document.url, "sha256": digests}


def _stream(name: str, url: str, target: Path, token_env: str | None) -> tuple[str, int]:
    """Copy one URL to `target` in chunks, hashing as it goes: (sha256, bytes)."""
    fs, path = open_url(name, url, token_env)
    digest = hashlib.sha256()
    size = 0
    partial = target.with_name(f".{target.name}.partial")
    try:
        with fs.open(path, "rb") as source, open(partial, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        partial.replace(target)
    except Exception as exc:  # each protocol raises its own kind; all mean "cannot read it"
        raise InputUnreachableError(name, url, unreachable_reason(exc)) from None
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest(), size
