"""K-means for the codebook of phase 0.3: faiss Lloyd iterations, k-means++ or random init, and
the reports (inertia, empty clusters, quantisation error, HNSW recall@1).

Pure functions over float32 numpy arrays; nothing here imports torch.

    from voltx_phases.codebook.kmeans import normalize_rows, quantization_report, train_kmeans
    result = train_kmeans(vectors, k=64, niter=10, seed=42, init="kmeans++")
    report = quantization_report(vectors, normalize_rows(result.centroids))

Why faiss rather than the original's mini-batch k-means (`docs/phases.md`, 0.3): its assignment
step runs at 74-81 % of the machine's sgemm ceiling, the original's
per-sample sequential update cannot be parallelised, and Lloyd iterations over all vectors
converge in fewer passes. The iterations are driven here one at a time (one faiss `Clustering`
pass each), which costs the same as one `faiss.Kmeans` call (bench/kmeans.py) and lets the phase
report each iteration's inertia as it happens and resume from a checkpointed iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs
import faiss
import numpy as np

from voltx_phases.codebook.config import INIT_METHODS

# faiss reads its input in blocks; this bounds the reports' temporary arrays (12 bytes a row).
_CHUNK_ROWS = 1 << 18


@attrs.frozen
class IterationStats:
    """One Lloyd iteration, as faiss measured it."""

    iteration: int  # 1-based
    inertia: float  # sum of squared L2 distances to the centroids entering this iteration
    nsplit: int  # clusters that came out empty and were re-seeded by splitting a large one
    imbalance: float  # faiss's imbalance factor: k * sum(size^2) / n^2, 1.0 when balanced
    seconds: float


@attrs.frozen
class KMeansResult:
    centroids: np.ndarray  # [k, d] float32; unit rows when spherical
    history: tuple[IterationStats, ...]
    init_seconds: float
    train_seconds: float


@attrs.frozen
class QuantizationReport:
    """How well entries cover vectors, by exact (brute-force) nearest entry."""

    inertia: float  # sum over vectors of the squared L2 distance to the nearest entry
    mean_error: float  # mean L2 distance to the nearest entry (the original's gate: < 0.15)
    empty_clusters: int  # entries nearest to no vector
    largest_cluster: int


def normalize_rows(array: np.ndarray) -> np.ndarray:
    """A float32 copy of `array` with unit rows (norms taken in float64); zero rows stay zero."""
    rows = np.asarray(array, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def sample_rows_inplace(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded random subset of `size` rows of `x`, compacted into its first rows (a view).

    In place, chunk by chunk, so the subset costs no second array: the vectors are the phase's
    largest allocation (1.6 GB at full size). Rows keep their relative order.
    """
    n = x.shape[0]
    if size >= n:
        return x
    chosen = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    # chosen[i] >= i, so row i is written only after every row it could be read from is read.
    for start in range(0, size, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, size)
        x[start:stop] = x[chosen[start:stop]]
    return x[:size]


def random_init(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct rows of `x` chosen uniformly (faiss's own default init)."""
    _check_enough(x, k)
    chosen = np.random.default_rng(seed).choice(x.shape[0], size=k, replace=False)
    return np.ascontiguousarray(x[np.sort(chosen)], dtype=np.float32)


def kmeanspp_init(
    x: np.ndarray,
    k: int,
    seed: int,
    sample_size: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """k-means++ seeding (Arthur and Vassilvitskii 2007) on a seeded subsample, as the original.

    The original (`docs/phases.md`, 0.3): sample at most 200,000 vectors; the first centroid
    uniform, each next one drawn with probability proportional to the squared L2 distance to the
    nearest centroid chosen so far, uniform when every distance is below 1e-30. Each round is one
    matrix-vector product over the sample (BLAS, multithreaded) and a running minimum, so the
    cost is k * m * d multiply-adds and memory-bound: about 15 ms a round at m = 200,000 on two
    cores. `progress(done, k)` is called every 1,024 centroids.
    """
    _check_enough(x, k)
    rng = np.random.default_rng(seed)
    if x.shape[0] > sample_size:
        chosen = np.sort(rng.choice(x.shape[0], size=max(sample_size, k), replace=False))
        sample = np.ascontiguousarray(x[chosen], dtype=np.float32)
    else:
        sample = np.ascontiguousarray(x, dtype=np.float32)
    m = sample.shape[0]
    sq_norms = np.einsum("ij,ij->i", sample, sample)
    centroids = np.empty((k, sample.shape[1]), dtype=np.float32)
    nearest = np.full(m, np.inf, dtype=np.float32)  # squared distance to the nearest centroid
    scratch = np.empty(m, dtype=np.float32)
    cumulative = np.empty(m, dtype=np.float64)
    pick = int(rng.integers(m))
    for j in range(k):
        centroid = sample[pick]
        centroids[j] = centroid
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c, clamped at 0 against rounding.
        np.matmul(sample, centroid, out=scratch)
        scratch *= -2.0
        scratch += sq_norms
        scratch += float(centroid @ centroid)
        np.maximum(scratch, 0.0, out=scratch)
        np.minimum(nearest, scratch, out=nearest)
        if j + 1 == k:
            break
        np.cumsum(nearest, dtype=np.float64, out=cumulative)
        total = cumulative[-1]
        if total < 1e-30:
            pick = int(rng.integers(m))
        else:
            pick = min(int(np.searchsorted(cumulative, rng.random() * total, side="right")), m - 1)
        if progress is not None and (j + 1) % 1024 == 0:
            progress(j + 1, k)
    return centroids


def train_kmeans(
    x: np.ndarray,
    k: int,
    *,
    niter: int,
    seed: int,
    init: str = "kmeans++",
    kmeanspp_sample: int = 200_000,
    spherical: bool = True,
    centroids: np.ndarray | None = None,
    first_iteration: int = 0,
    on_iteration: Callable[[IterationStats, np.ndarray], None] | None = None,
    init_progress: Callable[[int, int], None] | None = None,
) -> KMeansResult:
    """Lloyd k-means of the rows of `x` with faiss; `niter` iterations, nredo 1.

    `spherical` L2-normalises the centroids after every update (the original normalised them
    after every epoch); the assignment is then by inner product, which for unit centroids is
    the nearest by L2. Every vector is used (faiss would otherwise subsample above 256 per
    centroid). Empty clusters are re-seeded by faiss, which splits a large cluster in two.

    To resume, pass the `centroids` after `first_iteration` iterations; iterations
    first_iteration+1 .. niter then run. `on_iteration(stats, centroids)` is called after each;
    `init_progress` is handed to `kmeanspp_init`.
    """
    if init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS}, got {init!r}")
    _check_enough(x, k)
    if not (x.flags.c_contiguous and x.dtype == np.float32):
        raise ValueError("x must be a C-contiguous float32 array (a copy would double memory)")
    n, d = x.shape
    started = time.perf_counter()
    if centroids is None:
        first_iteration = 0
        if init == "kmeans++":
            centroids = kmeanspp_init(x, k, seed, kmeanspp_sample, init_progress)
        else:
            centroids = random_init(x, k, seed)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    if centroids.shape != (k, d):
        raise ValueError(f"centroids must be [{k}, {d}], got {list(centroids.shape)}")
    init_seconds = time.perf_counter() - started

    # The inertia of a spherical iteration comes from faiss's inner-product objective:
    # sum |x - c|^2 = sum |x|^2 + n - 2 sum x.c for unit centroids.
    sum_sq = _sum_squared_norms(x) if spherical else 0.0
    index = faiss.IndexFlatIP(d) if spherical else faiss.IndexFlatL2(d)
    history: list[IterationStats] = []
    for iteration in range(first_iteration + 1, niter + 1):
        iteration_started = time.perf_counter()
        params = faiss.ClusteringParameters()
        params.niter = 1
        params.nredo = 1
        params.spherical = spherical
        # The seed drives faiss's choice of which cluster to split for an empty one.
        params.seed = seed + iteration
        # Use every vector (faiss subsamples above k * max_points_per_centroid), and no stderr
        # warning below 39 points per centroid: the phase logs its own.
        params.max_points_per_centroid = max(1, math.ceil(n / k))
        params.min_points_per_centroid = 1
        # One NaN check is enough; later passes read the same, unchanged array.
        params.check_input_data_for_NaNs = iteration == first_iteration + 1
        clustering = faiss.Clustering(d, k, params)
        faiss.copy_array_to_vector(centroids.ravel(), clustering.centroids)
        clustering.train(x, index)
        centroids = faiss.vector_float_to_array(clustering.centroids).reshape(k, d)
        # A SWIG vector at run time (faiss's stubs call it a list, which has no `at`).
        faiss_stats = clustering.iteration_stats.at(0)  # type: ignore[attr-defined]
        objective = float(faiss_stats.obj)
        inertia = sum_sq + n - 2.0 * objective if spherical else objective
        stats = IterationStats(
            iteration=iteration,
            inertia=inertia,
            nsplit=int(faiss_stats.nsplit),
            imbalance=float(faiss_stats.imbalance_factor),
            seconds=time.perf_counter() - iteration_started,
        )
        history.append(stats)
        if on_iteration is not None:
            on_iteration(stats, centroids)
    train_seconds = time.perf_counter() - started - init_seconds
    return KMeansResult(centroids, tuple(history), init_seconds, train_seconds)


def quantization_report(x: np.ndarray, entries: np.ndarray) -> QuantizationReport:
    """Assign every row of `x` to its exact nearest entry (L2) and summarise."""
    index = faiss.IndexFlatL2(entries.shape[1])
    index.add(np.ascontiguousarray(entries, dtype=np.float32))
    counts = np.zeros(entries.shape[0], dtype=np.int64)
    inertia = 0.0
    error = 0.0
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        distances, labels = index.search(x[start : start + _CHUNK_ROWS], 1)
        squared = np.maximum(distances[:, 0], 0.0)  # faiss expands |x-c|^2; it can dip below 0
        inertia += float(squared.sum(dtype=np.float64))
        error += float(np.sqrt(squared).sum(dtype=np.float64))
        counts += np.bincount(labels[:, 0], minlength=entries.shape[0])
    return QuantizationReport(
        inertia=inertia,
        mean_error=error / max(1, x.shape[0]),
        empty_clusters=int((counts == 0).sum()),
        largest_cluster=int(counts.max()),
    )


def build_hnsw(
    entries: np.ndarray, m: int = 24, ef_construction: int = 200, ef_search: int = 32
) -> faiss.IndexHNSWFlat:
    """An HNSW index over unit `entries` by inner product (cosine), as the original's
    `hnsw_rs` index (`docs/phases.md`, 0.3): M 24, efConstruction 200, efSearch 32, ids = row
    index."""
    index = faiss.IndexHNSWFlat(entries.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(np.ascontiguousarray(entries, dtype=np.float32))
    index.hnsw.efSearch = ef_search
    return index


def hnsw_recall_at_1(index: faiss.Index, entries: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of `queries` whose HNSW top-1 is the exact (brute-force) top-1 by inner product.

    A different id with the same similarity (to 1e-6) counts as found: ties are not misses.
    """
    if queries.shape[0] == 0:
        return 1.0
    exact_index = faiss.IndexFlatIP(entries.shape[1])
    exact_index.add(np.ascontiguousarray(entries, dtype=np.float32))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exact_sim, exact_ids = exact_index.search(queries, 1)
    found_sim, found_ids = index.search(queries, 1)
    hits = (found_ids[:, 0] == exact_ids[:, 0]) | (found_sim[:, 0] >= exact_sim[:, 0] - 1e-6)
    return float(hits.mean())


def _check_enough(x: np.ndarray, k: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array, got shape {list(x.shape)}")
    if k < 1 or x.shape[0] < k:
        raise ValueError(f"k-means needs at least k = {k} vectors, got {x.shape[0]}")


def _sum_squared_norms(x: np.ndarray) -> float:
    total = 0.0
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        chunk = x[start : start + _CHUNK_ROWS]
        total += float(np.einsum("ij,ij->i", chunk, chunk).sum(dtype=np.float64))
    return total
