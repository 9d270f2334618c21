"""The `gamma_calibration` file: a raw confidence -> calibrated gamma curve (`docs/formats.md`,
"gamma_calibration").

    curve = GammaCurve.load(store_path)          # the artifact folder or its one file
    gammas = curve.apply(np.array([s.confidence for s in problem.samples]))

Whatever calibrator phase 3.2 chose (isotonic, temperature or Platt scaling) is stored tabulated
on a grid: `raw` f32 [K] strictly increasing, `calibrated` f32 [K] non-decreasing in [0, 1].
Applying the curve interpolates linearly between grid points and clamps beyond its ends, so a
reader needs no knowledge of which method produced it (the metadata still names it).
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from voltx.errors import ArtifactFormatError
from voltx_phases._common.artifact_files import locate_artifact_file
from voltx_phases._common.safetensors_header import canonicalize_safetensors

GAMMA_CURVE_FILE = "gamma_calibration.safetensors"
GAMMA_CURVE_FORMAT = "voltx-gamma-curve"
GAMMA_CURVE_VERSION = "1"
ARTIFACT_NAME = "gamma_calibration"
# The raw signal phase 3.2 maps by default: `voltx.generation.GeneratedSample.confidence`.
DEFAULT_SIGNAL = "confidence"
CALIBRATION_METHODS = ("identity", "isotonic", "temperature", "platt")


def _curve_problem(raw: np.ndarray, calibrated: np.ndarray) -> str | None:
    """Why (`raw`, `calibrated`) is not a valid curve, or None when it is."""
    if raw.ndim != 1 or calibrated.ndim != 1 or raw.shape != calibrated.shape:
        return f"raw and calibrated must be two [K] vectors, got {raw.shape}, {calibrated.shape}"
    if raw.shape[0] < 2:
        return f"a curve needs at least 2 grid points, got {raw.shape[0]}"
    if not (np.all(np.isfinite(raw)) and np.all(np.isfinite(calibrated))):
        return "raw and calibrated must be finite"
    if np.any(np.diff(raw) <= 0):
        return "raw must be strictly increasing"
    if np.any(np.diff(calibrated) < 0):
        return "calibrated must be non-decreasing"
    if calibrated[0] < 0.0 or calibrated[-1] > 1.0:
        return "calibrated must lie in [0, 1]"
    return None


def _check_curve(instance: GammaCurve, _attribute: object, _value: object) -> None:
    problem = _curve_problem(instance.raw, instance.calibrated)
    if problem is not None:
        raise ValueError(problem)


def _float32_vector(values: object) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


@attrs.frozen(eq=False)
class GammaCurve:
    """A monotone map from a sample's raw confidence (`signal`) to a calibrated gamma."""

    raw: np.ndarray = attrs.field(converter=_float32_vector)
    calibrated: np.ndarray = attrs.field(converter=_float32_vector, validator=_check_curve)
    method: str = attrs.field(validator=attrs.validators.in_(CALIBRATION_METHODS))
    signal: str = DEFAULT_SIGNAL

    @classmethod
    def identity(cls, signal: str = DEFAULT_SIGNAL) -> GammaCurve:
        """The curve that leaves a confidence in [0, 1] as it is (and clamps the rest)."""
        return cls(raw=[0.0, 1.0], calibrated=[0.0, 1.0], method="identity", signal=signal)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated gammas (float64, `raw`'s shape): linear between grid points, clamped at the
        ends to the first and last calibrated values."""
        values = np.asarray(raw, dtype=np.float64)
        mapped = np.interp(
            values.ravel(), self.raw.astype(np.float64), self.calibrated.astype(np.float64)
        )
        result: np.ndarray = mapped.reshape(values.shape)
        return result

    def write(self, path: Path) -> None:
        """Write the curve to `path` (a .safetensors file) with deterministic bytes."""
        save_file(
            {"raw": self.raw, "calibrated": self.calibrated},
            str(path),
            metadata={
                "format": GAMMA_CURVE_FORMAT,
                "version": GAMMA_CURVE_VERSION,
                "method": self.method,
                "signal": self.signal,
            },
        )
        canonicalize_safetensors(path)

    @classmethod
    def load(cls, path: Path | str) -> GammaCurve:
        """Read a curve from its file, or from the artifact folder that holds it; a file that is
        not one raises ArtifactFormatError naming the file and what is wrong."""
        file = locate_artifact_file(ARTIFACT_NAME, path, GAMMA_CURVE_FILE)

        def bad(reason: str) -> ArtifactFormatError:
            return ArtifactFormatError(ARTIFACT_NAME, str(file), reason)

        try:
            with safe_open(str(file), framework="np") as handle:
                metadata = dict(handle.metadata() or {})
            tensors = load_file(str(file))
        except Exception as exc:  # safetensors raises its own error types for a bad header
            raise bad(f"not a readable safetensors file: {exc}") from exc
        if metadata.get("format") != GAMMA_CURVE_FORMAT:
            raise bad(f"metadata format is {metadata.get('format')!r}, not {GAMMA_CURVE_FORMAT!r}")
        if metadata.get("version") != GAMMA_CURVE_VERSION:
            raise bad(f"metadata version {metadata.get('version')!r} is not {GAMMA_CURVE_VERSION}")
        if set(tensors) != {"raw", "calibrated"}:
            raise bad(f"expected tensors raw and calibrated, found {json.dumps(sorted(tensors))}")
        for name in ("raw", "calibrated"):
            if tensors[name].dtype != np.float32:
                raise bad(f"tensor {name!r} has dtype {tensors[name].dtype}, expected float32")
        problem = _curve_problem(tensors["raw"], tensors["calibrated"])
        if problem is not None:
            raise bad(problem)
        method = metadata.get("method", "")
        if method not in CALIBRATION_METHODS:
            raise bad(f"metadata method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
        return cls(
            raw=tensors["raw"],
            calibrated=tensors["calibrated"],
            method=method,
            signal=metadata.get("signal") or DEFAULT_SIGNAL,
        )


def check_gamma_curve_file(path: Path) -> None:
    """The artifact check of `gamma_calibration`: the file reads as a curve."""
    GammaCurve.load(path)
