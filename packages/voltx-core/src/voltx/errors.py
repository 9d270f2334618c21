"""The one error hierarchy of voltx.

Every error a user can cause ends up as a `VoltxError`: the CLI prints its message on one line and
exits non-zero. Errors carry the facts (phase id, path, line, key) as attributes so that callers
embedding voltx do not have to parse text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class VoltxError(Exception):
    """Base of every error voltx raises on purpose."""

    exit_code = 1


class ConfigError(VoltxError):
    """A project file, override or config value is wrong; `problems` lists every one found."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = prefix + self.problems[0]
        else:
            message = prefix + f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(message)


class PluginError(VoltxError):
    """A plugin failed to import, registered a duplicate, or implements an unknown hook."""

    def __init__(self, message: str, distribution: str | None = None) -> None:
        self.distribution = distribution
        super().__init__(message)


class GraphError(VoltxError):
    """The phase graph is inconsistent: a cycle, two producers, or an unmet requirement."""

    def __init__(self, message: str, phase_ids: Sequence[str] = ()) -> None:
        self.phase_ids = tuple(phase_ids)
        super().__init__(message)


class UnknownPhaseError(VoltxError):
    """A target names no registered phase or artifact."""

    def __init__(self, target: str, known: Iterable[str]) -> None:
        self.target = target
        hint = did_you_mean(target, known)
        super().__init__(f"unknown phase or artifact {target!r}{hint}")


class StoreError(VoltxError):
    """The artifact store could not be read or written as asked."""


class InvalidArtifactNameError(StoreError):
    """An artifact name or path would escape the store or is not a plain name."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"invalid artifact name {name!r}: {reason}")


class ArtifactNotFoundError(StoreError):
    """No ref or manifest exists for the name or digest asked for."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        super().__init__(f"no artifact {name!r} in the store{did_you_mean(name, known)}")


class MissingArtifactError(ArtifactNotFoundError):
    """Something needs an artifact the store does not have; the error names the phase that
    makes it (`producer`, None when no registered phase does)."""

    def __init__(self, name: str, store: str, producer: str | None, needed_by: str) -> None:
        self.name = name
        self.store = store
        self.producer = producer
        how = (
            f"phase {producer} makes it (voltx run {producer})"
            if producer
            else "no registered phase makes it (voltx artifacts add " + name + " PATH)"
        )
        StoreError.__init__(self, f"{needed_by} needs artifact {name!r}, not in {store}: {how}")


class SourceFileError(StoreError):
    """A file or folder to add to the store is missing or unreadable."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class ArtifactFormatError(StoreError):
    """A file added as an artifact does not have the names, shapes or header its users expect."""

    def __init__(self, name: str, path: str, reason: str) -> None:
        self.name = name
        self.path = path
        super().__init__(f"{path} cannot be {name}: {reason}")


class IntegrityError(StoreError):
    """Data in the store does not match its manifest."""


class CorruptBlobError(IntegrityError):
    """A file of an artifact is missing, or its bytes do not match the manifest's digest."""

    def __init__(self, artifact: str, path: str, store: str, reason: str) -> None:
        self.artifact = artifact
        self.path = path
        self.store = store
        self.reason = reason
        super().__init__(
            f"artifact {artifact!r}, file {path!r} in store {store}: {reason}"
            " (`voltx artifacts repair` re-fetches or quarantines it)"
        )


class ManifestError(IntegrityError):
    """A manifest, ref or record in the store cannot be read as one (truncated, wrong types)."""

    def __init__(self, file: str, store: str, reason: str) -> None:
        self.file = file
        self.store = store
        self.reason = reason
        super().__init__(f"{file} in store {store} is damaged: {reason}")


class InputUnreachableError(StoreError):
    """An input given by URL cannot be reached: not found, a refused credential, no route."""

    def __init__(self, name: str, url: str, reason: str) -> None:
        self.name = name
        self.url = url
        self.reason = reason
        super().__init__(f"inputs.{name}: {url}: {reason}")


class RemoteInputMismatchError(IntegrityError):
    """An input read from its URL does not hash to the sha256 it was pinned to."""

    def __init__(self, name: str, url: str, expected: str, got: str) -> None:
        self.name = name
        self.url = url
        super().__init__(
            f"input {name!r} read from {url} has sha256 {got[:16]}, not the pinned"
            f" {expected[:16]}; nothing was committed (fix the sha256 under [inputs] or the source)"
        )


class DestinationExistsError(StoreError):
    """`get` was asked to write where a file already is (or into the store itself)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


class BackendError(VoltxError):
    """A backend could not start, watch or stop a job."""

    def __init__(self, message: str, backend: str | None = None) -> None:
        self.backend = backend
        super().__init__(message)


class RunLeaseError(VoltxError):
    """Another run holds the store's lease (one run at a time per store); `holder` says who."""

    def __init__(self, store: str, reason: str, holder: object | None = None) -> None:
        self.store = store
        self.holder = holder
        super().__init__(
            f"store {store} is busy: {reason}; wait for it to finish, or stop it "
            "(a lease whose owner is gone is taken over by the next run)"
        )


class JobDocumentError(VoltxError):
    """A job document (``job.json``) cannot be read: not JSON, another format or version, or
    unknown keys, missing keys or wrong types; `problems` lists every one found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: not a job document this voltx reads: " + "; ".join(problems))


class PhaseError(VoltxError):
    """A phase's own code failed; the message names the phase and the plugin it came from."""

    def __init__(self, phase_id: str, message: str) -> None:
        self.phase_id = phase_id
        super().__init__(f"phase {phase_id}: {message}")


class PhaseStopped(VoltxError):
    """A phase stopped on request (cancel, budget) after committing a checkpoint to resume from."""

    exit_code = 130

    def __init__(self, phase_id: str, where: str) -> None:
        self.phase_id = phase_id
        super().__init__(f"phase {phase_id}: stopped on request at {where}; its checkpoint is kept")


class GenerationError(VoltxError):
    """Generation could not start: no generator registered by that name, or a bad request."""


class RunInterruptedError(VoltxError):
    """The run was stopped by the user (Ctrl-C); every job was cancelled."""

    exit_code = 130


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return "; did you mean X" for the closest candidate, or "" when none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]}" if matches else ""
