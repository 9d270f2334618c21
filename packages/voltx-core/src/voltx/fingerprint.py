"""Fingerprints: whether a phase's committed outputs still answer its current inputs and config.

fingerprint = sha256(phase id, phase code version, canonical config, input digests). When the
store holds a fingerprint record whose outputs are all committed, the phase is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from voltx.config import canonical_json
from voltx.store import ArtifactStore


def fingerprint(
    phase_id: str, version: str, config: Mapping[str, Any], inputs: Mapping[str, str]
) -> str:
    """The hex fingerprint of one phase run."""
    payload = {"phase": phase_id, "version": version, "config": config, "inputs": dict(inputs)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def input_digests(
    store: ArtifactStore,
    requires: Iterable[str],
    optional: Iterable[str],
    made_in_this_run: Mapping[str, str],
) -> dict[str, str]:
    """The input digests a phase's fingerprint takes: each required input as this run made it,
    else as the store holds it (KeyError naming one found nowhere); optional ones if stored."""
    digests: dict[str, str] = {}
    for name in requires:
        digest = made_in_this_run.get(name) or store.ref(name)
        if digest is None:
            raise KeyError(name)
        digests[name] = digest
    for name in optional:
        if (digest := store.ref(name)) is not None:
            digests[name] = digest
    return digests


def _record_path(fp: str) -> str:
    return f"fingerprints/{fp}.json"


def _last_path(phase_id: str) -> str:
    return f"phases/{phase_id}.json"


def committed_outputs(store: ArtifactStore, fp: str) -> dict[str, str] | None:
    """The outputs recorded for `fp`, if the record exists and every output is still there.

    "There" means the manifest reads and every blob it lists exists at its size (no hashing):
    a deleted or truncated blob makes the phase run again instead of being reported fresh.
    """
    record = store.read_record(_record_path(fp))
    if record is None:
        return None
    recorded = record.get("outputs", {})
    if not isinstance(recorded, dict):
        return None
    outputs = {str(k): str(v) for k, v in recorded.items()}
    if not all(store.is_intact(digest) for digest in outputs.values()):
        return None
    return outputs


def record_success(
    store: ArtifactStore,
    *,
    phase_id: str,
    fp: str,
    version: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    run_id: str,
) -> None:
    """Remember that `fp` produced `outputs` (after the outputs are committed)."""
    record = {
        "phase": phase_id,
        "fingerprint": fp,
        "version": version,
        "config": dict(config),
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "run_id": run_id,
    }
    store.write_record(_record_path(fp), record)
    store.write_record(_last_path(phase_id), record)


def why_run(
    store: ArtifactStore,
    phase_id: str,
    version: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str],
) -> str:
    """A short reason a phase must run, by comparing with its last successful run."""
    last = store.read_record(_last_path(phase_id))
    if last is None:
        return "never run"
    if last.get("version") != version:
        return f"code version {last.get('version')} -> {version}"
    changed = _changed_keys(last.get("config", {}), dict(config))
    if changed:
        return "config changed: " + ", ".join(changed[:4]) + ("..." if len(changed) > 4 else "")
    moved = sorted(
        k
        for k in set(inputs) | set(last.get("inputs", {}))
        if last.get("inputs", {}).get(k) != inputs.get(k)
    )
    if moved:
        return "input changed: " + ", ".join(moved)
    return "outputs missing from the store"


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted(set(old) | set(new))
        return [c for k in keys for c in _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    # Secret values are stored redacted, so a redacted value is not evidence of a change.
    return [] if old == new or old == "***" else [prefix.rstrip(".")]
