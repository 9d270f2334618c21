"""The `safety_axioms` file: what 3.3 writes reads back as the same axioms, with the same bytes for
the same axioms, and a damaged file is refused in one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from voltx.errors import ArtifactFormatError
from voltx_phases.hard_core.safety import Axiom, default_axioms
from voltx_phases.hard_core.safety_file import FILE_NAME, load_axioms, write_axioms


def _shifted_axioms() -> tuple[Axiom, ...]:
    rng = np.random.default_rng(0)
    return tuple(
        Axiom(
            name=axiom.name,
            vector=axiom.vector + rng.normal(size=256).astype(np.float32),
            threshold=0.25 + 0.05 * index,
            severity=axiom.severity,
        )
        for index, axiom in enumerate(default_axioms())
    )


def test_axioms_read_back_normalised_with_thresholds_and_severities(tmp_path: Path) -> None:
    written = _shifted_axioms()
    write_axioms(tmp_path / FILE_NAME, written)
    read = load_axioms(tmp_path)  # a folder holding the file is read too
    assert [axiom.name for axiom in read] == [axiom.name for axiom in written]
    assert [axiom.severity for axiom in read] == [axiom.severity for axiom in written]
    assert [axiom.threshold for axiom in read] == pytest.approx([0.25, 0.30, 0.35, 0.40, 0.45])
    for before, after in zip(written, read, strict=True):
        assert after.vector.dtype == np.float32
        assert not after.vector.flags.writeable
        assert np.linalg.norm(after.vector) == pytest.approx(1.0, abs=1e-6)
        expected = before.vector / np.linalg.norm(before.vector)
        np.testing.assert_allclose(after.vector, expected, atol=1e-6)


def test_the_constant_axioms_round_trip_bit_for_bit_and_bytes_are_stable(tmp_path: Path) -> None:
    write_axioms(tmp_path / "a.safetensors", default_axioms())
    write_axioms(tmp_path / "b.safetensors", default_axioms())
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    for constant, read in zip(
        default_axioms(), load_axioms(tmp_path / "a.safetensors"), strict=True
    ):
        assert read.threshold == pytest.approx(constant.threshold)
        np.testing.assert_allclose(read.vector, constant.vector, atol=1e-7)


def test_writing_axioms_out_of_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="K1_harm"):
        write_axioms(tmp_path / FILE_NAME, tuple(reversed(default_axioms())))


def _valid_parts() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    vectors = np.stack([axiom.vector for axiom in default_axioms()]).astype(np.float32)
    tensors = {"axioms": vectors, "thresholds": np.full(5, 0.5, dtype=np.float32)}
    metadata = {
        "format": "voltx-safety-axioms",
        "version": "1",
        "names": "K1_harm,K2_deception,K3_privacy,K4_autonomy,K5_integrity",
        "severities": "halt,halt,halt,warning,halt",
    }
    return tensors, metadata


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t, m: m.update(format="voltx-router-strands"), "metadata format"),
        (lambda t, m: m.update(version="2"), "metadata version"),
        (lambda t, m: m.update(names="a,b,c,d,e"), "metadata names"),
        (lambda t, m: m.update(severities="halt,halt,halt,halt"), "metadata severities"),
        (lambda t, m: t.pop("thresholds"), "missing tensor 'thresholds'"),
        (lambda t, m: t.update(axioms=t["axioms"][:4]), "tensor 'axioms'"),
        (lambda t, m: t.update(axioms=t["axioms"] * 2), "row 0 has norm"),
        (lambda t, m: t.update(extra=np.zeros(1, np.float32)), "unexpected tensor 'extra'"),
    ],
)
def test_a_damaged_file_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, damage: object, message: str
) -> None:
    tensors, metadata = _valid_parts()
    damage(tensors, metadata)  # type: ignore[operator]
    path = tmp_path / FILE_NAME
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ArtifactFormatError, match=message) as caught:
        load_axioms(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactFormatError, match="no such file"):
        load_axioms(tmp_path / FILE_NAME)
    (tmp_path / FILE_NAME).write_bytes(b"not safetensors")
    with pytest.raises(ArtifactFormatError, match="not a readable safetensors file"):
        load_axioms(tmp_path / FILE_NAME)
