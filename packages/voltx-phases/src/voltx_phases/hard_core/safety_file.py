"""The `safety_axioms` file: the five refined safety axioms K1-K5 that phase 3.3 writes and every
later reader of the safety layer loads (`docs/formats.md`, "safety_axioms").

    write_axioms(path, axioms)               # 3.3, after refinement
    axioms = load_axioms(path)               # e.g. 4.2; then safety.assess(frame, axioms)

One safetensors file: `axioms` f32 [5, 256] (rows L2-normalised, order K1..K5) and `thresholds`
f32 [5]; metadata `format`, `version`, and the comma-joined `names` and `severities`. Numpy only,
like the rest of the hard core: no reader of this file needs torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from voltx.errors import ArtifactFormatError
from voltx_phases._common.artifact_files import locate_artifact_file
from voltx_phases._common.safetensors_header import canonicalize_safetensors
from voltx_phases.hard_core.safety import Axiom, Severity, default_axioms
from voltx_phases.hard_core.vectors import SLOT_DIM

ARTIFACT = "safety_axioms"
FILE_NAME = "safety_axioms.safetensors"
FORMAT = "voltx-safety-axioms"
VERSION = "1"
AXIOM_COUNT = 5
# A row is "unit" when its norm is within this of 1: float32 rounding of a normalised row is far
# below it, an unnormalised row far above it.
_UNIT_TOLERANCE = 1e-4


def expected_names() -> tuple[str, ...]:
    """The axiom names in file order, K1..K5, as `hard_core/safety.py` names them."""
    return tuple(axiom.name for axiom in default_axioms())


def write_axioms(path: Path, axioms: Sequence[Axiom], frames: str | None = None) -> None:
    """Write `axioms` (K1..K5 in order) to `path`; rows are L2-normalised on the way out.
    `frames`, when given, records which frame of a program they were refined on ("reasoned"
    or "encoded") in the metadata key `frames`, which readers may ignore.

    Raises ValueError when the axioms are not the five K1..K5 of `hard_core/safety.py`, or a
    vector is not [256] with a non-zero norm: the file must read back with `load_axioms`."""
    names = tuple(axiom.name for axiom in axioms)
    if names != expected_names():
        raise ValueError(f"axioms must be {', '.join(expected_names())} in order, got {names}")
    vectors = np.stack([np.asarray(axiom.vector, dtype=np.float32) for axiom in axioms])
    if vectors.shape != (AXIOM_COUNT, SLOT_DIM):
        raise ValueError(f"axiom vectors must be [{SLOT_DIM}], got {vectors.shape[1:]}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise ValueError("axiom vectors must be finite and non-zero")
    tensors = {
        "axioms": np.ascontiguousarray(vectors / norms, dtype=np.float32),
        "thresholds": np.array([axiom.threshold for axiom in axioms], dtype=np.float32),
    }
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "names": ",".join(names),
        "severities": ",".join(axiom.severity.value for axiom in axioms),
    }
    if frames is not None:
        metadata["frames"] = frames
    path = Path(path)
    save_file(tensors, str(path), metadata=metadata)
    canonicalize_safetensors(path)


def _fail(path: Path, reason: str) -> ArtifactFormatError:
    return ArtifactFormatError(ARTIFACT, str(path), reason)


def _read(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    if not path.is_file():
        raise _fail(path, "no such file")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise _fail(path, f"not a readable safetensors file ({exc})") from exc
    return metadata, tensors


def _check_metadata(path: Path, metadata: dict[str, str]) -> tuple[Severity, ...]:
    if metadata.get("format") != FORMAT:
        raise _fail(path, f"metadata format is {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise _fail(path, f"metadata version is {metadata.get('version')!r}, expected {VERSION}")
    names = tuple(metadata.get("names", "").split(","))
    if names != expected_names():
        raise _fail(path, f"metadata names are {metadata.get('names')!r}, expected K1..K5")
    values = metadata.get("severities", "").split(",")
    known = {severity.value: severity for severity in Severity}
    if len(values) != AXIOM_COUNT or any(value not in known for value in values):
        raise _fail(
            path, f"metadata severities {metadata.get('severities')!r} are not 5 of {sorted(known)}"
        )
    return tuple(known[value] for value in values)


def load_axioms(path: Path | str) -> tuple[Axiom, ...]:
    """The five axioms K1..K5 stored at `path` (the file, or a folder holding `FILE_NAME`), ready
    for `safety.assess(frame, axioms)`; vectors are read-only float32.

    Raises ArtifactFormatError with a one-line reason naming the file and the key at fault."""
    path = locate_artifact_file(ARTIFACT, path, FILE_NAME)
    metadata, tensors = _read(path)
    severities = _check_metadata(path, metadata)
    for name, shape in (("axioms", (AXIOM_COUNT, SLOT_DIM)), ("thresholds", (AXIOM_COUNT,))):
        if name not in tensors:
            raise _fail(path, f"missing tensor {name!r}")
        if tensors[name].dtype != np.float32 or tensors[name].shape != shape:
            raise _fail(
                path,
                f"tensor {name!r} is {tensors[name].dtype} {list(tensors[name].shape)},"
                f" expected float32 {list(shape)}",
            )
    extra = sorted(set(tensors) - {"axioms", "thresholds"})
    if extra:
        raise _fail(path, f"unexpected tensor {extra[0]!r}")
    vectors, thresholds = tensors["axioms"], tensors["thresholds"]
    if not (np.all(np.isfinite(vectors)) and np.all(np.isfinite(thresholds))):
        raise _fail(path, "tensor 'axioms' or 'thresholds' holds a non-finite value")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off_unit = np.flatnonzero(np.abs(norms - 1.0) > _UNIT_TOLERANCE)
    if off_unit.size:
        row = int(off_unit[0])
        raise _fail(path, f"tensor 'axioms' row {row} has norm {norms[row]:.6f}, expected 1")
    axioms = []
    for index, name in enumerate(expected_names()):
        vector = np.array(vectors[index], dtype=np.float32)
        vector.setflags(write=False)
        axioms.append(
            Axiom(
                name=name,
                vector=vector,
                threshold=float(thresholds[index]),
                severity=severities[index],
            )
        )
    return tuple(axioms)
