"""The job document: what the scheduler tells a worker to run, in the job folder's ``job.json``.

It crosses a process boundary and often a machine boundary (a backend ships it to an SSH host or a
rented instance, and may rewrite the store URL or the GPU numbers on the way), so it is one frozen
type with one writer (`JobDocument.to_json`) and one reader (`JobDocument.from_json`). The reader
is strict: an unknown key or a value of the wrong type is refused with its key named, never
guessed at. The format is described in `docs/formats.md` ("The job document").

Loading this module stays cheap (attrs, cattrs, json): backend plugins import it, and loading a
plugin must not pull in the worker and everything it needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx import __version__
from voltx.config import structure, unstructure
from voltx.errors import ConfigError, JobDocumentError

# The job folder's file names: the document the worker reads, and the result it writes.
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
# What the ``format`` key holds, and the version this voltx writes and reads. A change that an
# older worker could misread (a new required key, a key whose meaning changes) bumps the version;
# a worker refuses a version it does not know instead of running something else than was asked.
JOB_FORMAT = "voltx-job"
JOB_VERSION = 1


@attrs.frozen
class JobDocument:
    """One attempt of one phase, as the worker runs it.

    `store` is the URL the worker opens (a backend that copies a folder store to the host points
    this at the copy). `config` is the phase's resolved config without its secrets (those travel
    in the job's environment, `voltx.worker.SECRETS_ENV`). `inputs` maps each artifact name the
    phase reads to its digest. `devices` are the GPU indices the job may use on its host (empty:
    CPU). `fresh` (``voltx run --force``, first attempt) tells the worker to start the phase from
    scratch: the checkpoints an earlier run left for the same fingerprint, here and in the store,
    are removed rather than resumed from. `voltx_version` is the version of the voltx that wrote
    the document, for messages. `processes` > 1 runs the phase data-parallel: the worker launches
    that many ranks under ``torchrun`` (`voltx.data_parallel`).
    """

    run_id: str
    phase_id: str
    store: str
    fingerprint: str
    attempt: int = 1
    profile: str | None = None
    config: dict[str, Any] = attrs.field(factory=dict)
    inputs: dict[str, str] = attrs.field(factory=dict)
    devices: tuple[int, ...] = ()
    fresh: bool = False
    processes: int = 1
    format: str = JOB_FORMAT
    version: int = JOB_VERSION
    voltx_version: str = __version__

    def to_json(self) -> bytes:
        """The document as the bytes of ``job.json`` (the one writer)."""
        return (json.dumps(unstructure(self), indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes | str, source: str = JOB_FILE) -> JobDocument:
        """Read a document written by `to_json` (the one reader); `source` names it in errors.

        Raises `JobDocumentError` for text that is not JSON, a document of another format or
        version, and every unknown key, missing key or wrong type (all of them at once).
        """
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise JobDocumentError(source, [f"not JSON ({exc})"]) from None
        if not isinstance(data, Mapping):
            raise JobDocumentError(source, [f"expected a JSON object, got {type(data).__name__}"])
        _check_format(data, source)
        try:
            document: JobDocument = structure(cls, data, path="job")
        except ConfigError as exc:
            raise JobDocumentError(source, exc.problems) from None
        return document

    @classmethod
    def read(cls, path: Path) -> JobDocument:
        """The document in the file at `path`."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise JobDocumentError(str(path), [f"cannot read it ({exc.strerror})"]) from None
        return cls.from_json(raw, source=str(path))

    def write(self, path: Path) -> None:
        """Write the document to `path` (a fresh job folder's file: no reader sees it half done)."""
        path.write_bytes(self.to_json())


def job_document_in(files: Mapping[str, bytes], source: str = JOB_FILE) -> JobDocument | None:
    """The job document among a job request's files, or None for a job that is not a worker's
    (a plain command has no ``job.json``; that name is reserved for the document)."""
    raw = files.get(JOB_FILE)
    return None if raw is None else JobDocument.from_json(raw, source)


def _check_format(data: Mapping[str, Any], source: str) -> None:
    """Refuse a document of another kind or version before its keys are read: a newer voltx may
    have added keys, and "unknown key" would hide the real problem, the version mismatch."""
    kind, version = data.get("format"), data.get("version")
    if kind != JOB_FORMAT:
        raise JobDocumentError(source, [f"job.format: expected {JOB_FORMAT!r}, got {kind!r}"])
    if version != JOB_VERSION:
        writer = data.get("voltx_version")
        by = f" (written by voltx {writer})" if isinstance(writer, str) else ""
        raise JobDocumentError(
            source,
            [
                f"job.version: this voltx ({__version__}) reads job documents of version "
                f"{JOB_VERSION}, not {version!r}{by}; run the same voltx version on both sides"
            ],
        )
