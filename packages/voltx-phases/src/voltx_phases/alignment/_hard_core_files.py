"""Readers of the two hard-core files phase 4.2 reads, to the formats of `docs/formats.md`
(`gamma_calibration`, `safety_axioms`).

Phases 3.2 and 3.3 own these formats and their readers (`hard_core.gamma_curve.GammaCurve`,
`hard_core.safety_file.load_axioms`); this module reads the same files through the same
contract so that 4.2 runs and is tested on its own, and is meant to give way to those readers.
Nothing is unpickled: both are safetensors files with string metadata.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
from safetensors import safe_open

from voltx.errors import VoltxError
from voltx_phases.hard_core.safety import Axiom, Severity

GAMMA_FORMAT = "voltx-gamma-curve"
AXIOMS_FORMAT = "voltx-safety-axioms"


class HardCoreFileError(VoltxError):
    """A gamma-curve or safety-axioms file does not follow its format; names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


def _read(path: Path, expected_format: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise HardCoreFileError(path, f"not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != expected_format or metadata.get("version") != "1":
        raise HardCoreFileError(
            path,
            f"metadata format/version is {metadata.get('format')!r}/{metadata.get('version')!r}, "
            f"expected {expected_format!r}/'1'",
        )
    return tensors, metadata


@attrs.frozen(eq=False)
class GammaCurve:
    """A calibrated map raw confidence -> P(pass), tabulated on a strictly increasing grid."""

    raw: np.ndarray
    calibrated: np.ndarray

    @classmethod
    def load(cls, path: Path) -> GammaCurve:
        tensors, _ = _read(path, GAMMA_FORMAT)
        raw = tensors.get("raw")
        calibrated = tensors.get("calibrated")
        if raw is None or calibrated is None:
            raise HardCoreFileError(path, "needs tensors 'raw' and 'calibrated'")
        raw, calibrated = raw.astype(np.float64), calibrated.astype(np.float64)
        if raw.ndim != 1 or raw.shape != calibrated.shape or raw.size < 2:
            raise HardCoreFileError(
                path,
                f"'raw' and 'calibrated' must be two [K >= 2] tensors, got "
                f"{raw.shape} and {calibrated.shape}",
            )
        if np.any(np.diff(raw) <= 0):
            raise HardCoreFileError(path, "'raw' must be strictly increasing")
        if np.any(np.diff(calibrated) < 0) or calibrated.min() < 0 or calibrated.max() > 1:
            raise HardCoreFileError(path, "'calibrated' must be non-decreasing in [0, 1]")
        return cls(raw, calibrated)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Linear interpolation on the grid, clamped at its ends."""
        mapped: np.ndarray = np.interp(np.asarray(raw, dtype=np.float64), self.raw, self.calibrated)
        return mapped


def load_axioms(path: Path) -> tuple[Axiom, ...]:
    """The refined K1-K5 of a `safety_axioms` file, as `hard_core.safety.Axiom`s."""
    tensors, metadata = _read(path, AXIOMS_FORMAT)
    vectors, thresholds = tensors.get("axioms"), tensors.get("thresholds")
    names = [n for n in metadata.get("names", "").split(",") if n]
    severities = [s for s in metadata.get("severities", "").split(",") if s]
    if vectors is None or thresholds is None or vectors.ndim != 2 or vectors.shape[1] != 256:
        raise HardCoreFileError(path, "needs tensors 'axioms' [N, 256] and 'thresholds' [N]")
    count = vectors.shape[0]
    if thresholds.shape != (count,) or len(names) != count or len(severities) != count:
        raise HardCoreFileError(
            path, f"{count} axioms need {count} thresholds, names and severities"
        )
    try:
        levels = [Severity(severity) for severity in severities]
    except ValueError as exc:
        raise HardCoreFileError(path, f"unknown severity in {severities}") from exc
    axioms = []
    for index in range(count):
        vector = np.array(vectors[index], dtype=np.float32)
        vector.setflags(write=False)
        axioms.append(Axiom(names[index], vector, float(thresholds[index]), levels[index]))
    return tuple(axioms)
