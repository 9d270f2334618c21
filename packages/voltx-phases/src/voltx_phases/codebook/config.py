"""Config of phase 0.3 (the codebook) with its ``tiny`` and ``full`` profiles.

Torch-free on purpose: the plugin module imports this to declare the phase, and planning must not
import torch or faiss. Every field can be overridden from ``voltx.toml`` or the command line,
e.g. ``voltx run 0.3 --set 0.3.niter=25 --set 0.3.init=random``.

``full`` is the original's numbers (`docs/phases.md`, 0.3); ``tiny`` is the smoke configuration
described there: 200 files (at most 3,200 vectors), k = 64, a few seconds on two cores.
"""

from __future__ import annotations

from typing import Any

import attrs

INIT_METHODS = ("random", "kmeans++")
MAX_ENTRIES = 65_536  # codebook ids are u16 in the original


def _in_range(low: int, high: int | None = None) -> Any:
    validators = [attrs.validators.ge(low)]
    if high is not None:
        validators.append(attrs.validators.le(high))
    return attrs.validators.and_(*validators)


@attrs.frozen
class CodebookConfig:
    """Phase 0.3: encode corpus files to R0 slot vectors, k-means them, write the codebook."""

    # Codebook entries. The file format allows 1..65,536 (u16 ids). At full size 1.6M vectors
    # give 24 per centroid, below faiss's advised 39: expect empty-cluster splits early on.
    k: int = attrs.field(default=MAX_ENTRIES, validator=_in_range(1, MAX_ENTRIES))
    # Corpus files successfully encoded (files of 50 to 50,000 bytes); 16 vectors at most each.
    max_files: int = attrs.field(default=100_000, validator=_in_range(1))
    # Vectors kept for k-means, a seeded random subset when more were collected.
    sample_size: int = attrs.field(default=2_000_000, validator=_in_range(1))
    # Lloyd iterations (the original's 50 mini-batch epochs each were one pass too).
    niter: int = attrs.field(default=50, validator=_in_range(1))
    seed: int = 42
    # "kmeans++" as the original (on `kmeanspp_sample` vectors), or "random": k distinct vectors.
    # k-means++ costs k * kmeanspp_sample * 256 multiply-adds, memory-bound (minutes at full size).
    init: str = attrs.field(default="kmeans++", validator=attrs.validators.in_(INIT_METHODS))
    kmeanspp_sample: int = attrs.field(default=200_000, validator=_in_range(1))
    # L2-normalise centroids after every update, as the original did after every epoch.
    spherical: bool = True
    # Files per encoder forward pass (length-sorted, so padding stays small).
    batch_size: int = attrs.field(default=64, validator=_in_range(1))
    # HNSW over the entries, cosine, the original's constants (`docs/phases.md`, 0.3).
    hnsw_m: int = attrs.field(default=24, validator=_in_range(2))
    ef_construction: int = attrs.field(default=200, validator=_in_range(1))
    ef_search: int = attrs.field(default=32, validator=_in_range(1))
    # Corpus vectors queried to measure HNSW recall@1 against brute force.
    recall_sample: int = attrs.field(default=10_000, validator=_in_range(0))
    device: str = "auto"


CODEBOOK_PROFILES = {
    "tiny": CodebookConfig(
        k=64,
        max_files=200,
        sample_size=3_200,
        niter=8,
        kmeanspp_sample=3_200,
        batch_size=32,
        recall_sample=1_000,
        device="cpu",
    ),
    "full": CodebookConfig(),
}
