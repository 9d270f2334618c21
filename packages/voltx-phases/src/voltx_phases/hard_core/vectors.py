"""Deterministic hash vectors: FNV-1a (64-bit) and `seed_to_vector`, as `docs/phases.md`
("Hard core") specifies them, bit for bit.

    from voltx_phases.hard_core.vectors import fnv1a_64, seed_to_vector
    word_vector = seed_to_vector(fnv1a_64("return".encode()))

Every capability and axiom vector of the hard core is a `seed_to_vector` of an 8-byte ASCII seed,
so the exact arithmetic matters: a port that rounds differently routes differently near a
threshold. All integer arithmetic wraps modulo 2**64, as the original's u64 does.
"""

from __future__ import annotations

import numpy as np

SLOT_DIM = 256
"""The width of a slot's R0 vector, and of every capability and axiom vector."""

FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_U64_MASK = (1 << 64) - 1

_SEED_MULTIPLIER = 0xD2B74407B1CE6E93
_MIX_MULTIPLIER_1 = 0xFF51AFD7ED558CCD
_MIX_MULTIPLIER_2 = 0xC4CEB9FE1A85EC53
# u64::MAX as f64 rounds to 2**64; Python's float() rounds the same way (to nearest, ties to even).
_U64_MAX_AS_F64 = float(_U64_MASK)


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of `data`: xor each byte in, then multiply by the FNV prime."""
    h = FNV_OFFSET_BASIS
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & _U64_MASK
    return h


def _mix(seed: int, index: int) -> int:
    h = (seed * _SEED_MULTIPLIER + index) & _U64_MASK
    h ^= h >> 33
    h = (h * _MIX_MULTIPLIER_1) & _U64_MASK
    h ^= h >> 33
    h = (h * _MIX_MULTIPLIER_2) & _U64_MASK
    h ^= h >> 33
    return h


def seed_to_vector(seed: int, dim: int = SLOT_DIM) -> np.ndarray:
    """The unit float32 vector of `seed`: component i is the mixed hash of (seed, i) mapped to
    [-1, 1] in float64, cast to float32, then the vector is L2-normalised in float32.

    The norm is a sequential float32 sum of squares (not numpy's pairwise sum) followed by a
    float32 square root and a float32 division, as the original computes it; a zero norm (it
    cannot happen for dim >= 1 in practice) leaves the vector as it is."""
    if not 0 <= seed <= _U64_MASK:
        raise ValueError(f"seed {seed} is not an unsigned 64-bit integer")
    if dim < 1:
        raise ValueError(f"dim must be at least 1, got {dim}")
    raw = np.array(
        [(_mix(seed, i) / _U64_MAX_AS_F64) * 2.0 - 1.0 for i in range(dim)], dtype=np.float64
    ).astype(np.float32)
    squares = raw * raw
    norm = np.sqrt(np.add.accumulate(squares, dtype=np.float32)[-1])
    if norm > np.float32(1e-10):
        unit: np.ndarray = raw / norm
        return unit
    return raw


def ascii_seed(text: str) -> int:
    """The big-endian u64 of an 8-character ASCII tag: "MATHENG1" -> 0x4d415448454e4731."""
    encoded = text.encode("ascii")
    if len(encoded) != 8:
        raise ValueError(f"a seed tag is 8 ASCII characters, got {text!r}")
    return int.from_bytes(encoded, "big")


def cosine_matrix(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of `rows` [A, D] with every row of `columns` [B, D], as a
    float64 [A, B] array; a zero vector has cosine 0 with everything (not NaN)."""
    a = np.asarray(rows, dtype=np.float64)
    b = np.asarray(columns, dtype=np.float64)
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    b_norm = np.linalg.norm(b, axis=1, keepdims=True)
    denominator = a_norm * b_norm.T
    dots = a @ b.T
    cosines: np.ndarray = np.divide(
        dots, denominator, out=np.zeros_like(dots), where=denominator > 0
    )
    return cosines
