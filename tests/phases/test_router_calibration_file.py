"""The router_calibration file (phase 3.1's artifact): round trip, determinism, and every check
of the reader failing in one line that names the file and what is wrong."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from voltx.errors import ArtifactFormatError
from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.router import route
from voltx_phases.hard_core.strands_file import (
    FILE_NAME,
    STRAND_NAMES,
    check_strands_file,
    load_strands,
    write_strands,
)


def _arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(5, 256)).astype(np.float32), np.linspace(0.1, 0.5, 5, dtype=np.float32)


def test_round_trip_gives_unit_rows_in_strand_order(tmp_path: Path) -> None:
    vectors, thresholds = _arrays()
    write_strands(tmp_path / FILE_NAME, vectors, thresholds)
    strands = load_strands(tmp_path)  # the artifact's folder works as well as the file
    assert tuple(s.name for s in strands) == STRAND_NAMES
    for strand, raw, threshold in zip(strands, vectors, thresholds, strict=True):
        assert strand.capability.dtype == np.float32
        assert abs(float(np.linalg.norm(strand.capability)) - 1.0) < 1e-6
        np.testing.assert_allclose(strand.capability, raw / np.linalg.norm(raw), rtol=1e-6)
        assert strand.threshold == float(threshold)
    # The router reads them as it reads the constant strands: a slot equal to MathEngine's
    # vector routes there.
    frame = SlotFrame.from_arrays(
        r0=np.stack([strands[3].capability, np.zeros(256, np.float32)]),
        present=np.array([True, False]),
    )
    decision = route(frame, strands)
    assert decision.strand_name == "MathEngine" and decision.activated


def test_equal_inputs_give_equal_bytes(tmp_path: Path) -> None:
    vectors, thresholds = _arrays()
    write_strands(tmp_path / "a.safetensors", vectors, thresholds)
    write_strands(tmp_path / "b.safetensors", vectors, thresholds)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    raw = (tmp_path / "a.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert header["__metadata__"] == {
        "format": "voltx-router-strands",
        "version": "1",
        "strands": ",".join(STRAND_NAMES),
    }


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


_GOOD_METADATA = {
    "format": "voltx-router-strands",
    "version": "1",
    "strands": ",".join(STRAND_NAMES),
}


@pytest.mark.parametrize(
    ("tensors", "metadata", "message"),
    [
        (
            {"capabilities": _unit(_arrays()[0])},
            _GOOD_METADATA,
            "tensor 'thresholds' is missing",
        ),
        (
            {"capabilities": _unit(_arrays()[0])[:4], "thresholds": _arrays()[1]},
            _GOOD_METADATA,
            "tensor 'capabilities' is float32 [4, 256], expected float32 [5, 256]",
        ),
        (
            {"capabilities": _arrays()[0], "thresholds": _arrays()[1]},
            _GOOD_METADATA,
            "capabilities row 0 (CodeRunner) has norm",
        ),
        (
            {"capabilities": _unit(_arrays()[0]), "thresholds": _arrays()[1] * np.float32(3)},
            _GOOD_METADATA,
            "threshold 3 (MathEngine) is",
        ),
        (
            {"capabilities": _unit(_arrays()[0]), "thresholds": _arrays()[1]},
            {**_GOOD_METADATA, "strands": "a,b,c,d,e"},
            "metadata 'strands' is 'a,b,c,d,e'",
        ),
        (
            {"capabilities": _unit(_arrays()[0]), "thresholds": _arrays()[1]},
            {**_GOOD_METADATA, "version": "2"},
            "metadata 'version' is '2', expected '1'",
        ),
    ],
)
def test_bad_files_fail_in_one_line(
    tmp_path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str], message: str
) -> None:
    path = tmp_path / FILE_NAME
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ArtifactFormatError) as caught:
        check_strands_file(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactFormatError, match="no such file"):
        load_strands(tmp_path)
    (tmp_path / FILE_NAME).write_bytes(b"not safetensors at all")
    with pytest.raises(ArtifactFormatError, match="not a safetensors file"):
        load_strands(tmp_path / FILE_NAME)


def test_the_documented_table_is_what_write_strands_writes(tmp_path: Path) -> None:
    """docs/formats.md's router_calibration table (tensor, shape, dtype) matches the file."""
    from _layouts import FORMATS

    text = FORMATS.read_text()
    section = text[text.index("## Router calibration (phase 3.1)") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(\w+)` \| \[([\d, ]+)\] \| (\w+) \|", section, re.MULTILINE)
    documented = {
        name: (tuple(int(d) for d in shape.split(",")), dtype) for name, shape, dtype in rows
    }
    write_strands(tmp_path / FILE_NAME, *_arrays())
    with safe_open(str(tmp_path / FILE_NAME), framework="np") as handle:
        written = {
            name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
            for name in handle.keys()  # noqa: SIM118 (safe_open has no __iter__)
        }
    assert written == documented


def test_voltx_artifacts_add_runs_the_check(tmp_path: Path) -> None:
    from voltx.imports import check_artifact

    write_strands(tmp_path / FILE_NAME, *_arrays())
    check_artifact("router_calibration", tmp_path)  # the registered check accepts it
    (tmp_path / FILE_NAME).write_bytes(b"garbage")
    with pytest.raises(ArtifactFormatError, match="cannot be router_calibration"):
        check_artifact("router_calibration", tmp_path / FILE_NAME)
