"""Config of phase 0.3 (the codebook) with its ``tiny`` and ``full`` profiles.

Torch-free on purpose: the plugin module imports this to declare the phase, and planning must not
import torch or faiss. Every field can be overridden from ``voltx.toml`` or the command line,
e.g. ``voltx run 0.3 --set 0.3.niter=25 --set 0.3.init=random``.

``full`` is the original's numbers (`docs/phases.md`, 0.3); ``tiny`` is the smoke configuration
described there: 200 files (at most 3,200 vectors), k = 64, a few seconds on two cores.
"""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import (
    at_least,
    between,
    non_negative,
    positive,
    seed,
)

INIT_METHODS = ("random", "kmeans++")
MAX_ENTRIES = 65_536  # codebook ids are u16 in the original


@attrs.frozen
class CodebookConfig:
    """Phase 0.3: encode corpus files to R0 slot vectors, k-means them, write the codebook."""

    # Codebook entries. The file format allows 1..65,536 (u16 ids). At full size 1.6M vectors
    # give 24 per centroid, below faiss's advised 39: expect empty-cluster splits early on.
    k: int = attrs.field(default=MAX_ENTRIES, validator=between(1, MAX_ENTRIES))
    # Corpus files successfully encoded (files of 50 to 50,000 bytes); 16 vectors at most each.
    max_files: int = attrs.field(default=100_000, validator=positive())
    # Vectors kept for k-means, a seeded random subset when more were collected.
    sample_size: int = attrs.field(default=2_000_000, validator=positive())
    # Lloyd iterations (the original's 50 mini-batch epochs each were one pass too).
    niter: int = attrs.field(default=50, validator=positive())
    seed: int = attrs.field(default=42, validator=seed())
    # "kmeans++" as the original (on `kmeanspp_sample` vectors), or "random": k distinct vectors.
    # k-means++ costs k * kmeanspp_sample * 256 multiply-adds, memory-bound (minutes at full size).
    init: str = attrs.field(default="kmeans++", validator=attrs.validators.in_(INIT_METHODS))
    kmeanspp_sample: int = attrs.field(default=200_000, validator=positive())
    # L2-normalise centroids after every update, as the original did after every epoch.
    spherical: bool = True
    # Files per encoder forward pass (length-sorted, so padding stays small).
    batch_size: int = attrs.field(default=64, validator=positive())
    # HNSW over the entries, cosine, the original's constants (`docs/phases.md`, 0.3).
    hnsw_m: int = attrs.field(default=24, validator=at_least(2))
    ef_construction: int = attrs.field(default=200, validator=positive())
    ef_search: int = attrs.field(default=32, validator=positive())
    # Corpus vectors queried to measure HNSW recall@1 against brute force.
    recall_sample: int = attrs.field(default=10_000, validator=non_negative())
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
