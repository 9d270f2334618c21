"""`codebook_code.bin`, the codebook file of phase 0.3, in the original's exact layout.

`docs/formats.md`, VXCB codebook (the original's `volt-bus/src/codebook.rs`). Little-endian, no
padding, no checksum:

    offset  size            field
    0       4               magic, ASCII ``VXCB``
    4       4               version, u32 = 1
    8       4               entry_count, u32 in 1..65,536
    12      4               dim, u32 = 256
    16      count*256*4     float32 rows, row-major [entry_count, 256]

At 65,536 entries the file is exactly 67,108,880 bytes. Files written here load in the original
and the original's files load here:

    from voltx_phases.codebook.codebook_file import read_codebook, write_codebook
    entries = read_codebook("codebook_code.bin")        # float32 [count, 256], unit rows

`check_codebook_file` is the artifact check for ``voltx artifacts add codebook_code PATH``. This
module needs only numpy, so the check is cheap to run.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from voltx_phases.codebook.config import MAX_ENTRIES

FILE_NAME = "codebook_code.bin"
MAGIC = b"VXCB"
VERSION = 1
DIM = 256
HEADER = struct.Struct("<4sIII")  # magic, version, entry_count, dim
MIN_NORM = 1e-10
# A row whose norm is within this of 1 is already unit to float32 precision; leaving it untouched
# keeps a write-then-read round trip bit-exact (dividing by 0.99999994 would move last bits).
_UNIT_TOLERANCE = 1e-6


class CodebookFormatError(ValueError):
    """A codebook file or array breaks the layout; `field` names what is wrong."""

    def __init__(self, path: Path | str | None, field: str, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.field = field
        self.reason = reason
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}{field}: {reason}")


def codebook_file_size(count: int, dim: int = DIM) -> int:
    """Bytes of a codebook file holding `count` rows of `dim` floats."""
    return HEADER.size + count * dim * 4


def write_codebook(path: Path | str, entries: np.ndarray) -> None:
    """Write `entries` ([count, 256], finite, no zero row) in the VXCB layout.

    The rows are written as given; phase 0.3 L2-normalises them first, as the original did.
    """
    array = np.asarray(entries)
    if array.ndim != 2 or array.shape[1] != DIM:
        raise CodebookFormatError(None, "dim", f"entries must be [count, {DIM}], got {array.shape}")
    if not 0 < array.shape[0] <= MAX_ENTRIES:
        raise CodebookFormatError(
            None, "entry_count", f"must be in 1..{MAX_ENTRIES}, got {array.shape[0]}"
        )
    rows = np.ascontiguousarray(array, dtype="<f4")
    _check_rows(None, rows)
    with open(path, "wb") as stream:
        stream.write(HEADER.pack(MAGIC, VERSION, rows.shape[0], DIM))
        stream.write(rows.data)


def read_codebook(path: Path | str) -> np.ndarray:
    """Read and check a codebook file; float32 [count, 256] with every row L2-normalised.

    Checks, as the original's loader does: magic, version == 1, 0 < entry_count <= 65,536,
    dim == 256, the file size, every value finite and every row's norm >= 1e-10.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as stream:
        header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise CodebookFormatError(
            path, "header", f"file is {size} bytes, shorter than the {HEADER.size}-byte header"
        )
    magic, version, count, dim = HEADER.unpack(header)
    if magic != MAGIC:
        raise CodebookFormatError(path, "magic", f"expected {MAGIC!r}, found {magic!r}")
    if version != VERSION:
        raise CodebookFormatError(path, "version", f"expected {VERSION}, found {version}")
    if not 0 < count <= MAX_ENTRIES:
        raise CodebookFormatError(
            path, "entry_count", f"must be in 1..{MAX_ENTRIES}, found {count}"
        )
    if dim != DIM:
        raise CodebookFormatError(path, "dim", f"expected {DIM}, found {dim}")
    expected = codebook_file_size(count, dim)
    if size != expected:
        raise CodebookFormatError(
            path,
            "file size",
            f"expected {HEADER.size} + {count}*{dim}*4 = {expected} bytes, found {size}",
        )
    rows = np.fromfile(path, dtype="<f4", count=count * dim, offset=HEADER.size)
    rows = rows.reshape(count, dim).astype(np.float32, copy=False)
    norms = _check_rows(path, rows)
    # The original re-normalises on load, so files from any writer come out unit length.
    off = np.abs(norms - 1.0) > _UNIT_TOLERANCE
    if off.any():
        rows[off] = (rows[off] / norms[off, None]).astype(np.float32)
    return rows


def check_codebook_file(path: Path) -> None:
    """Artifact check for ``codebook_code``: `path` is the file or a folder holding it."""
    path = Path(path)
    if path.is_dir():
        named = path / FILE_NAME
        candidates = [named] if named.is_file() else sorted(path.rglob("*.bin"))
        if len(candidates) != 1:
            raise CodebookFormatError(
                path, "file", f"expected one {FILE_NAME} in the folder, found {len(candidates)}"
            )
        path = candidates[0]
    read_codebook(path)


def _check_rows(path: Path | str | None, rows: np.ndarray) -> np.ndarray:
    """Raise on the first non-finite value or near-zero row; returns the row norms (float64)."""
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise CodebookFormatError(path, f"entry {bad}", "holds a value that is not finite")
    norms: np.ndarray = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    small = norms < MIN_NORM
    if small.any():
        bad = int(np.argmax(small))
        raise CodebookFormatError(
            path, f"entry {bad}", f"norm {norms[bad]:.3g} is below {MIN_NORM:g}"
        )
    return norms
