"""Encoding problems into frames with the frozen encoder, and the frame cache's file format.

The original re-encoded every problem at the start of every `train-vfn` run; phase 2.0 encodes
each problem dataset once into ``<dataset>.safetensors`` inside the `problem_frames` artifact:

    query_vectors    f32 [N, 16, 256]   R0 slots of the problem description (x0)
    query_present    u8  [N, 16]
    solution_vectors f32 [N, 16, 256]   R0 slots of the reference solution (x1)
    solution_present u8  [N, 16]

with the problem ids in the safetensors metadata (key ``ids``, a JSON list).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

from voltx_phases._common.safetensors_header import canonicalize_safetensors
from voltx_phases.models.encoder import CodeEncoder, encode_frames

MAX_TOKENS = 512  # the original's LearnedTranslator truncates at 512 ids


def encode_texts(
    encoder: CodeEncoder,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of `texts`: vectors [N, 16, 256] float32 and present [N, 16] bool."""
    count = len(texts)
    vectors = np.zeros((count, 16, encoder.shape.hidden_dim), dtype=np.float32)
    present = np.zeros((count, 16), dtype=bool)
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    lengths = [min(len(e.ids), MAX_TOKENS) for e in encodings]
    # Longest first in batches of similar length: less padding, same frames (encoding is masked).
    order = sorted(range(count), key=lambda i: -lengths[i])
    encoder = encoder.to(device)
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            chunk = order[start : start + batch_size]
            width = max(1, max(lengths[i] for i in chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):
                ids[row, : lengths[index]] = torch.tensor(encodings[index].ids[: lengths[index]])
            frames = encode_frames(
                encoder,
                ids.to(device),
                torch.tensor([max(1, lengths[i]) for i in chunk], device=device),
            )
            vectors[chunk] = frames.vectors.float().cpu().numpy()
            present[chunk] = frames.present.cpu().numpy()
    return vectors, present


@attrs.frozen
class FrameSet:
    """One dataset's problem frames, as read from the cache."""

    ids: tuple[str, ...]
    query: np.ndarray
    query_present: np.ndarray
    solution: np.ndarray
    solution_present: np.ndarray


def write_frame_set(path: Path, frames: FrameSet) -> None:
    save_file(
        {
            "query_vectors": np.ascontiguousarray(frames.query, dtype=np.float32),
            "query_present": frames.query_present.astype(np.uint8),
            "solution_vectors": np.ascontiguousarray(frames.solution, dtype=np.float32),
            "solution_present": frames.solution_present.astype(np.uint8),
        },
        str(path),
        metadata={"format": "voltx-problem-frames/1", "ids": json.dumps(list(frames.ids))},
    )
    canonicalize_safetensors(path)


def read_frame_set(path: Path) -> FrameSet:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata() or {}
    tensors = load_file(str(path))
    return FrameSet(
        ids=tuple(json.loads(metadata.get("ids", "[]"))),
        query=tensors["query_vectors"],
        query_present=tensors["query_present"].astype(bool),
        solution=tensors["solution_vectors"],
        solution_present=tensors["solution_present"].astype(bool),
    )
