"""The `gamma_calibration` file: write, read back, apply; a damaged file fails with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from voltx.errors import ArtifactFormatError
from voltx_phases.hard_core.gamma_curve import GAMMA_CURVE_FILE, GammaCurve


def test_a_curve_round_trips_with_identical_bytes(tmp_path: Path) -> None:
    curve = GammaCurve(raw=[0.0, 0.2, 0.5, 1.0], calibrated=[0.1, 0.1, 0.4, 0.9], method="isotonic")
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    curve.write(first)
    curve.write(second)
    assert first.read_bytes() == second.read_bytes()
    loaded = GammaCurve.load(first)
    assert loaded.method == "isotonic" and loaded.signal == "confidence"
    np.testing.assert_array_equal(loaded.raw, curve.raw)
    np.testing.assert_array_equal(loaded.calibrated, curve.calibrated)


def test_apply_interpolates_linearly_and_clamps_at_the_ends(tmp_path: Path) -> None:
    curve = GammaCurve(raw=[0.2, 0.6], calibrated=[0.1, 0.5], method="platt")
    mapped = curve.apply(np.array([[0.0, 0.2], [0.4, 0.9]]))
    np.testing.assert_allclose(mapped, [[0.1, 0.1], [0.3, 0.5]], rtol=1e-6)
    assert GammaCurve.identity().apply(np.array([0.3]))[0] == pytest.approx(0.3)


def test_the_artifact_folder_is_read_as_its_one_file(tmp_path: Path) -> None:
    GammaCurve.identity().write(tmp_path / GAMMA_CURVE_FILE)
    assert GammaCurve.load(tmp_path).method == "identity"


@pytest.mark.parametrize(
    ("tensors", "metadata", "message"),
    [
        ({"raw": [0.0, 1.0], "calibrated": [0.0, 1.0]}, {"format": "other"}, "metadata format"),
        ({"raw": [0.5, 0.5], "calibrated": [0.0, 1.0]}, {}, "strictly increasing"),
        ({"raw": [0.0, 1.0], "calibrated": [0.9, 0.1]}, {}, "non-decreasing"),
        ({"raw": [0.0, 1.0], "calibrated": [0.0, 1.5]}, {}, r"in \[0, 1\]"),
        ({"raw": [0.0, 1.0]}, {}, "expected tensors"),
    ],
)
def test_a_bad_file_is_rejected_naming_the_file(
    tmp_path: Path, tensors: dict[str, list[float]], metadata: dict[str, str], message: str
) -> None:
    path = tmp_path / GAMMA_CURVE_FILE
    header = {"format": "voltx-gamma-curve", "version": "1", "method": "isotonic"} | metadata
    save_file({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path), header)
    with pytest.raises(ArtifactFormatError, match=message) as caught:
        GammaCurve.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_adding_a_foreign_file_as_gamma_calibration_is_refused(tmp_path: Path) -> None:
    from voltx.imports import check_artifact

    good = tmp_path / "good" / GAMMA_CURVE_FILE
    good.parent.mkdir()
    GammaCurve.identity().write(good)
    check_artifact("gamma_calibration", good.parent)
    bad = tmp_path / GAMMA_CURVE_FILE
    save_file({"raw": np.zeros(2, np.float32)}, str(bad), {"format": "voltx-gamma-curve"})
    with pytest.raises(ArtifactFormatError, match="cannot be gamma_calibration"):
        check_artifact("gamma_calibration", bad)
