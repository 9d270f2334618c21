"""The hard core's hash vectors: FNV-1a against the published 64-bit test vectors, and
`seed_to_vector` against an independent pure-Python reimplementation of its formula, bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from voltx_phases.hard_core.vectors import (
    SLOT_DIM,
    ascii_seed,
    cosine_matrix,
    fnv1a_64,
    seed_to_vector,
)

M64 = 2**64


def as_f32(value: float) -> float:
    """Round a Python float to the nearest float32 (f64 carries enough bits for +, *, /, sqrt of
    float32 operands that rounding the f64 result once more is exact IEEE float32)."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def reference_seed_to_vector(seed: int) -> bytes:
    components = []
    for i in range(SLOT_DIM):
        h = (seed * 0xD2B74407B1CE6E93 % M64 + i) % M64
        h ^= h >> 33
        h = h * 0xFF51AFD7ED558CCD % M64
        h ^= h >> 33
        h = h * 0xC4CEB9FE1A85EC53 % M64
        h ^= h >> 33
        components.append(as_f32((float(h) / float(M64 - 1)) * 2.0 - 1.0))
    total = 0.0
    for component in components:
        total = as_f32(total + as_f32(component * component))
    norm = as_f32(math.sqrt(total))
    return struct.pack(f"<{SLOT_DIM}f", *(as_f32(c / norm) for c in components))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a_64_matches_published_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


@pytest.mark.parametrize(
    "seed",
    [
        0,
        1,
        M64 - 1,
        0x4D415448454E4731,  # MATHENG1
        0x4B314841524D5F5F,  # K1HARM__
        0xAF63DC4C8601EC8C,  # fnv1a_64(b"a"), a word vector
    ],
)
def test_seed_to_vector_matches_independent_reimplementation_bit_for_bit(seed: int) -> None:
    vector = seed_to_vector(seed)
    assert vector.dtype == np.float32
    assert vector.shape == (SLOT_DIM,)
    assert vector.astype("<f4").tobytes() == reference_seed_to_vector(seed)


def test_seed_to_vector_is_unit_and_seeds_are_nearly_orthogonal() -> None:
    a, b = seed_to_vector(ascii_seed("MATHENG1")), seed_to_vector(ascii_seed("CODERUN1"))
    assert abs(float(np.linalg.norm(a.astype(np.float64))) - 1.0) < 1e-6
    assert abs(float(a.astype(np.float64) @ b.astype(np.float64))) < 0.3


def test_seed_to_vector_rejects_seeds_outside_u64() -> None:
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        seed_to_vector(M64)
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        seed_to_vector(-1)


def test_ascii_seed_is_the_big_endian_tag() -> None:
    assert ascii_seed("MATHENG1") == 0x4D415448454E4731
    assert ascii_seed("K4AUTONO") == 0x4B344155544F4E4F
    with pytest.raises(ValueError, match="8 ASCII"):
        ascii_seed("SHORT")


def test_cosine_of_a_zero_vector_is_zero_not_nan() -> None:
    rows = np.array([[0.0] * 4, [1.0, 0.0, 0.0, 0.0]])
    columns = np.array([[2.0, 0.0, 0.0, 0.0]])
    assert cosine_matrix(rows, columns).tolist() == [[0.0], [1.0]]
