"""Staging artifacts between a store on this machine and a store on an SSH host.

A worker opens its store by the URL in ``job.json``. An object store (``s3://``) is reachable from
any host, so the URL passes through and the host reads and writes the store itself. A folder store
on this machine does not exist on the host, so the backend stages (the "direct copy" option):

- before the start, the inputs' manifests and blobs are copied into a folder store on the host
  (``<remote_root>/store``), only those it lacks, and ``job.json`` names that store instead;
- the worker commits its outputs and fingerprint record there, as on any file store;
- once the job has succeeded, its committed output folders come back and are committed here with
  the lineage the host recorded, each digest checked against the host's, and the fingerprint
  record is written here too, so the next run skips the phase.

The copies use the store layout documented in ``docs/concepts.md`` (``blobs/sha256/ab/<digest>``,
``manifests/<digest>.json``, ``records/fingerprints/<fp>.json``). The host's store keeps what it
received, so a later phase on the same host finds its inputs there already.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

from voltx.errors import BackendError, IntegrityError
from voltx.fingerprint import record_success
from voltx.job_document import JobDocument
from voltx.store import ArtifactStore
from voltx.store.manifest import parse_manifest, parse_record
from voltx_backends.ssh.transport import SSHTransport

log = structlog.get_logger(__name__)

REMOTE_STORE_DIR = "store"


def is_folder_store(url: str) -> bool:
    """Whether a store URL names a folder on this machine (a path or ``file://``)."""
    return "://" not in url or url.startswith("file://")


def blob_path(digest: str) -> str:
    """Where a file's content lies in a store, relative to its root."""
    return f"blobs/sha256/{digest[:2]}/{digest}"


def manifest_path(digest: str) -> str:
    """Where an artifact's manifest lies in a store, relative to its root."""
    return f"manifests/{digest}.json"


def fingerprint_record_path(fp: str) -> str:
    """Where the outputs of a fingerprint are recorded, relative to the store's root."""
    return f"records/fingerprints/{fp}.json"


def missing_on_host(transport: SSHTransport, remote_base: str, paths: list[str]) -> list[str]:
    """Those of `paths` (relative to `remote_base`) that do not exist on the host."""
    if not paths:
        return []
    # The list goes on stdin: it may be long, and a command line has a limit.
    script = f"""
cd {shlex.quote(remote_base)} 2>/dev/null || {{ cat; exit 0; }}
while IFS= read -r path; do [ -e "$path" ] || printf '%s\\n' "$path"; done
"""
    listing = "".join(f"{p}\n" for p in paths).encode()
    output = transport.check(script, input=listing, idempotent=True, what="listing the host store")
    return [line for line in output.decode().splitlines() if line]


def push_inputs(
    transport: SSHTransport, store: ArtifactStore, remote_store: str, digests: Iterable[str]
) -> int:
    """Copy the artifacts `digests` from `store` into the host's store; returns files copied."""
    root = store.local_root
    if root is None:
        raise BackendError(f"store {store.url} is not a folder on this machine", "ssh")
    blobs: list[str] = []
    manifests: list[str] = []
    for digest in dict.fromkeys(digests):
        artifact = store.load_manifest(digest)
        manifests.append(manifest_path(digest))
        blobs.extend(blob_path(entry.sha256) for entry in artifact.files)
    missing = set(missing_on_host(transport, remote_store, [*blobs, *manifests]))
    # Blobs before manifests: a manifest on the host always finds its blobs beside it.
    for batch in ([p for p in blobs if p in missing], [p for p in manifests if p in missing]):
        transport.put(root, remote_store, list(dict.fromkeys(batch)))
    if missing:
        log.debug("inputs staged to host", files=len(missing), host=transport.destination)
    return len(missing)


def pull_outputs(
    transport: SSHTransport,
    store: ArtifactStore,
    remote_root: str,
    job_id: str,
    job: JobDocument,
    result: Mapping[str, Any],
    scratch: Path,
) -> dict[str, str]:
    """Commit the outputs a job committed on the host into `store`; returns name -> digest.

    `job` is the job's document (its fingerprint) and `result` its ``result.json`` (the
    output digests). `scratch` is a folder on this machine for the copies on their way in.
    """
    outputs = {str(name): str(digest) for name, digest in result.get("outputs", {}).items()}
    fp = job.fingerprint
    job_folder = f"jobs/{job_id}"
    wanted = [f"{job_folder}/outputs/{name}" for name in outputs]
    wanted += [f"{REMOTE_STORE_DIR}/{manifest_path(d)}" for d in outputs.values()]
    if fp:
        wanted.append(f"{REMOTE_STORE_DIR}/{fingerprint_record_path(fp)}")
    scratch.mkdir(parents=True, exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix=f"ssh-{job_id[:40]}-", dir=scratch))
    try:
        transport.get(remote_root, local, wanted)
        for name, digest in outputs.items():
            manifest_file = local / REMOTE_STORE_DIR / manifest_path(digest)
            manifest = parse_manifest(
                manifest_file.read_bytes(), manifest_path(digest), transport.destination
            )
            committed = store.commit(name, local / job_folder / "outputs" / name, manifest.lineage)
            if committed.digest != digest:
                raise IntegrityError(
                    f"output {name} of job {job_id} came back as {committed.short}, "
                    f"but the host committed {digest[:12]}"
                )
        record_file = local / REMOTE_STORE_DIR / fingerprint_record_path(fp)
        if fp and record_file.exists():
            record = parse_record(
                record_file.read_bytes(), fingerprint_record_path(fp), transport.destination
            )
            record_success(
                store,
                phase_id=str(record["phase"]),
                fp=fp,
                version=str(record["version"]),
                config=record.get("config", {}),
                inputs=record.get("inputs", {}),
                outputs=record.get("outputs", outputs),
                run_id=str(record.get("run_id", job.run_id)),
            )
    finally:
        shutil.rmtree(local, ignore_errors=True)
    log.debug("outputs staged back", job_id=job_id, outputs=sorted(outputs))
    return outputs
