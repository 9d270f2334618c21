"""Deterministic safetensors bytes, torch-free: the numpy writers of the hard core's files and
the torch writers of `_common/weights.py` share it."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def canonicalize_safetensors(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, so equal tensors give equal bytes.

    The safetensors writer keeps metadata in a Rust HashMap, whose order changes from process to
    process: the same weights would get a new digest on every run, and everything downstream
    would look changed. The data offsets are relative to the end of the header, so a header of
    another length needs no other change.
    """
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    staging.replace(path)
