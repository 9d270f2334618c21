"""`router_calibration.safetensors`, the calibrated strands phase 3.1 writes (`docs/formats.md`,
router_calibration).

    from voltx_phases.hard_core.strands_file import load_strands
    strands = load_strands(store_path / "router_calibration")   # the file or its folder
    decision = route(frame, strands)

Two tensors: `capabilities` float32 [5, 256], unit rows in `STRAND_NAMES` order, and
`thresholds` float32 [5]; the header's metadata says `format` = `voltx-router-strands`,
`version` = `1` and `strands` = the comma-joined names. The reader checks all of it and raises
`ArtifactFormatError` (one line naming the file and the tensor or key) on the first problem;
`check_strands_file` is the artifact check of ``voltx artifacts add router_calibration PATH``.
Reading needs numpy and safetensors only; nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from voltx.errors import ArtifactFormatError
from voltx_phases._common.artifact_files import locate_artifact_file
from voltx_phases._common.safetensors_header import canonicalize_safetensors
from voltx_phases.hard_core.strands import Strand
from voltx_phases.hard_core.vectors import SLOT_DIM

ARTIFACT = "router_calibration"
FILE_NAME = "router_calibration.safetensors"
FORMAT = "voltx-router-strands"
VERSION = "1"
# The five strands phase 3.1 calibrates, in file order; the order breaks routing ties.
STRAND_NAMES = ("CodeRunner", "CodeDebugger", "CodeExplainer", "MathEngine", "MemoryRetrieval")
# A row counts as unit length within this of 1: float32 normalisation leaves a few ulps.
UNIT_TOLERANCE = 1e-4


def _error(path: Path | str, reason: str) -> ArtifactFormatError:
    return ArtifactFormatError(ARTIFACT, str(path), reason)


def write_strands(path: Path | str, capabilities: np.ndarray, thresholds: np.ndarray) -> None:
    """Write `capabilities` [5, 256] (rows are normalised here) and `thresholds` [5] as the
    router_calibration file; equal inputs give equal bytes."""
    vectors = np.asarray(capabilities, dtype=np.float32)
    limits = np.asarray(thresholds, dtype=np.float32)
    count = len(STRAND_NAMES)
    if vectors.shape != (count, SLOT_DIM) or limits.shape != (count,):
        raise ValueError(
            f"capabilities must be [{count}, {SLOT_DIM}] and thresholds [{count}], got "
            f"{vectors.shape} and {limits.shape}"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not (np.isfinite(vectors).all() and np.isfinite(limits).all() and (norms > 0).all()):
        raise ValueError("capabilities and thresholds must be finite, with no zero row")
    unit = np.ascontiguousarray(vectors / norms, dtype=np.float32)
    target = Path(path)
    save_file(
        {"capabilities": unit, "thresholds": np.ascontiguousarray(limits)},
        str(target),
        metadata={"format": FORMAT, "version": VERSION, "strands": ",".join(STRAND_NAMES)},
    )
    canonicalize_safetensors(target)


def read_strand_arrays(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """The checked `capabilities` [5, 256] and `thresholds` [5] of the file (or its folder)."""
    file = locate_artifact_file(ARTIFACT, path, FILE_NAME)
    try:
        with safe_open(str(file), framework="np") as handle:
            metadata = handle.metadata() or {}
            names = set(handle.keys())
            missing = sorted({"capabilities", "thresholds"} - names)
            if missing:
                raise _error(file, f"tensor {missing[0]!r} is missing")
            vectors = handle.get_tensor("capabilities")
            limits = handle.get_tensor("thresholds")
    except SafetensorError as exc:
        raise _error(file, f"not a safetensors file ({exc})") from exc
    expected = {"format": FORMAT, "version": VERSION, "strands": ",".join(STRAND_NAMES)}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise _error(file, f"metadata {key!r} is {metadata.get(key)!r}, expected {value!r}")
    count = len(STRAND_NAMES)
    for name, array, shape in (
        ("capabilities", vectors, (count, SLOT_DIM)),
        ("thresholds", limits, (count,)),
    ):
        if array.dtype != np.float32 or array.shape != shape:
            raise _error(
                file,
                f"tensor {name!r} is {array.dtype} {list(array.shape)}, expected "
                f"float32 {list(shape)}",
            )
        if not np.isfinite(array).all():
            raise _error(file, f"tensor {name!r} holds a value that is not finite")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > UNIT_TOLERANCE)
    if off.size:
        row = int(off[0])
        raise _error(
            file, f"capabilities row {row} ({STRAND_NAMES[row]}) has norm {norms[row]:.6g}, not 1"
        )
    if (np.abs(limits) > 1.0).any():
        row = int(np.argmax(np.abs(limits) > 1.0))
        raise _error(file, f"threshold {row} ({STRAND_NAMES[row]}) is {limits[row]}, not a cosine")
    return vectors, limits


def load_strands(path: Path | str) -> tuple[Strand, ...]:
    """The calibrated strands of a router_calibration file (or its folder), in file order, ready
    for `hard_core.router.route` and `hard_core.pipeline.read_batch`."""
    vectors, limits = read_strand_arrays(path)
    strands = []
    for name, vector, threshold in zip(STRAND_NAMES, vectors, limits, strict=True):
        capability = np.array(vector, dtype=np.float32)
        capability.setflags(write=False)
        strands.append(Strand(name=name, capability=capability, threshold=float(threshold)))
    return tuple(strands)


def check_strands_file(path: Path) -> None:
    """Artifact check for ``router_calibration``: the file, or a folder holding it."""
    read_strand_arrays(path)
