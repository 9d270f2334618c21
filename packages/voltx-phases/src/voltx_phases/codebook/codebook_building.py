"""Phase 0.3: the codebook. Corpus files to slot vectors, k-means to 65,536 entries, HNSW.

    voltx run 0.3 [--profile tiny] [--set 0.3.niter=25]
    python -c 'import voltx; voltx.run("0.3", profile="tiny")'

Inputs: ``code_tokenizer`` (``code_tokenizer.json``), ``code_encoder``
(``code_encoder.safetensors``, its shape read from the tensors) and ``stack_python``
(``stack_python.jsonl``, corpus documents). Outputs:

- ``codebook_code``: ``codebook_code.bin`` in the original's exact layout (`docs/formats.md`,
  VXCB codebook; 67,108,880 bytes at k = 65,536), L2-normalised rows. Read it with
  `voltx_phases.codebook.codebook_file.read_codebook`.
- ``codebook_hnsw``: ``codebook_hnsw.faiss``, a faiss ``IndexHNSWFlat`` over those rows by inner
  product (cosine; M 24, efConstruction 200, efSearch 32; id = row), and ``codebook_hnsw.json``
  describing it, with the recall@1 against brute force and the k-means report.

Steps: encode up to `max_files` files into one preallocated array (`corpus_encoding`), keep a
seeded random `sample_size` of the vectors, k-means with faiss (`kmeans`), normalise and write
the entries, check that the file reads back to the same array, then build and measure the HNSW
index. The original's mini-batch k-means is replaced by Lloyd iterations over all vectors
(`docs/phases.md`, 0.3: any documented ordering of the updates is allowed); its k-means++
seeding is kept. Each iteration's inertia goes to ``metrics.jsonl`` and each iteration is
checkpointed, so a rerun after a crash re-encodes the corpus (deterministic) and resumes k-means
where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import faiss
import numpy as np
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays

from voltx import PhaseContext, PhaseError
from voltx.checkpoints import CheckpointManager
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.training_state import check_checkpoint_files
from voltx_phases.codebook.codebook_file import FILE_NAME, read_codebook, write_codebook
from voltx_phases.codebook.config import CodebookConfig
from voltx_phases.codebook.corpus_encoding import encode_corpus, load_tokenizer
from voltx_phases.codebook.kmeans import (
    IterationStats,
    QuantizationReport,
    build_hnsw,
    hnsw_recall_at_1,
    normalize_rows,
    quantization_report,
    sample_rows_inplace,
    train_kmeans,
)
from voltx_phases.datasets.schema import read_documents
from voltx_phases.models.loading import load_encoder

HNSW_FILE = "codebook_hnsw.faiss"
HNSW_JSON = "codebook_hnsw.json"
# faiss's advice: at least 39 training vectors per centroid (fewer gives noisy centroids).
_ADVISED_PER_CENTROID = 39


@attrs.frozen
class Codebook:
    """What phase 0.3 computes from the vectors."""

    entries: np.ndarray  # [k, 256] float32, unit rows, exactly as the file holds them
    history: tuple[IterationStats, ...]
    report: QuantizationReport
    hnsw: faiss.IndexHNSWFlat
    recall_at_1: float
    recall_queries: int
    vectors: int  # vectors k-means ran on
    kmeans_seconds: float
    hnsw_seconds: float


def run(ctx: PhaseContext) -> None:
    config: CodebookConfig = ctx.config
    device = resolve_device(config.device, ctx)
    tokenizer = load_tokenizer(_input(ctx, "code_tokenizer", "code_tokenizer.json", "*.json"))
    # Hidden 256 and 16 roles are fixed by the frame format; the check refuses anything else.
    encoder = load_encoder(
        _input(ctx, "code_encoder", "code_encoder.safetensors", "*.safetensors"), device
    ).eval()
    if tokenizer.get_vocab_size() > encoder.shape.vocab_size:
        raise PhaseError(
            ctx.phase_id,
            f"the tokenizer has {tokenizer.get_vocab_size()} ids but the encoder embeds only "
            f"{encoder.shape.vocab_size}: they are not from the same run",
        )
    corpus_path = _input(ctx, "stack_python", "stack_python.jsonl", "*.jsonl")
    ctx.log.info("encoding corpus", corpus=corpus_path.name, max_files=config.max_files)
    corpus = encode_corpus(
        read_documents(corpus_path),
        tokenizer,
        encoder,
        max_files=config.max_files,
        batch_size=config.batch_size,
        progress=ctx.progress,
    )
    del encoder  # its activations and weights are not needed for k-means
    stats = corpus.stats
    ctx.log.info("corpus encoded", **attrs.asdict(stats))
    ctx.metrics.log_metrics(
        0,
        files_encoded=stats.files_encoded,
        files_skipped_size=stats.skipped_size,
        files_failed=stats.skipped_failed,
        vectors_collected=stats.vectors,
        encode_files_per_s=stats.files_encoded / max(stats.seconds, 1e-9),
        encode_mb_per_s=stats.bytes / 1e6 / max(stats.seconds, 1e-9),
    )
    if stats.vectors < config.k:
        raise PhaseError(
            ctx.phase_id,
            f"{stats.vectors} vectors from {stats.files_encoded} files ({stats.skipped_size} "
            f"skipped for size, {stats.skipped_failed} without tokens): fewer than k = "
            f"{config.k}; add corpus files or lower k",
        )
    if config.sample_size < config.k:
        raise PhaseError(ctx.phase_id, f"sample_size {config.sample_size} is below k = {config.k}")

    def on_iteration(it: IterationStats) -> None:
        ctx.metrics.log_metrics(
            it.iteration,
            inertia=it.inertia,
            nsplit=it.nsplit,
            imbalance=it.imbalance,
            iteration_seconds=it.seconds,
        )
        ctx.progress(it.iteration, config.niter, inertia=it.inertia)

    codebook = build_codebook(
        corpus.vectors, config, log=ctx.log, checkpoints=ctx.checkpoints, on_iteration=on_iteration
    )
    code_path = ctx.outputs["codebook_code"] / FILE_NAME
    write_codebook(code_path, codebook.entries)
    if not np.array_equal(read_codebook(code_path), codebook.entries):
        raise PhaseError(ctx.phase_id, f"{FILE_NAME} does not read back to the entries written")
    hnsw_folder = ctx.outputs["codebook_hnsw"]
    faiss.write_index(codebook.hnsw, str(hnsw_folder / HNSW_FILE))
    # Durations go to the metrics, never into the artifact: its bytes must depend only on its
    # inputs and config, or a rerun elsewhere would never match its digest (docs/concepts.md).
    timings = {"tokenize_seconds", "seconds"}
    counts = {key: value for key, value in attrs.asdict(stats).items() if key not in timings}
    description = describe(codebook, config, stats=counts)
    (hnsw_folder / HNSW_JSON).write_text(json.dumps(description, indent=1) + "\n")
    summary = description["codebook"]
    ctx.metrics.log_metrics(
        config.niter,
        final_inertia=summary["inertia"],
        mean_quantization_error=summary["mean_quantization_error"],
        empty_clusters=summary["empty_clusters"],
        hnsw_recall_at_1=codebook.recall_at_1,
        encode_seconds=stats.seconds,
        tokenize_seconds=stats.tokenize_seconds,
        kmeans_seconds=codebook.kmeans_seconds,
        hnsw_seconds=codebook.hnsw_seconds,
    )
    ctx.log.info(
        "codebook written",
        entries=codebook.entries.shape[0],
        bytes=code_path.stat().st_size,
        inertia=summary["inertia"],
        mean_quantization_error=summary["mean_quantization_error"],
        empty_clusters=summary["empty_clusters"],
        hnsw_recall_at_1=codebook.recall_at_1,
    )


def build_codebook(
    vectors: np.ndarray,
    config: CodebookConfig,
    *,
    log: Any = None,
    checkpoints: CheckpointManager | None = None,
    on_iteration: Callable[[IterationStats], None] | None = None,
) -> Codebook:
    """The core of 0.3 after encoding: sample, k-means, normalise, report, HNSW, recall.

    `vectors` (float32 [n, 256], C-contiguous) is reordered in place by the sampling, which
    needs no second array. With `checkpoints`, every iteration is saved and a matching earlier
    one (same vectors, k, seed, init) is resumed from. `on_iteration(stats)` is called for
    every iteration, restored ones included, in order.
    """
    started = time.perf_counter()
    sample = sample_rows_inplace(vectors, config.sample_size, config.seed)
    n = sample.shape[0]
    if n < config.k:
        raise ValueError(f"k-means needs at least k = {config.k} vectors, got {n}")
    if log is not None and n < _ADVISED_PER_CENTROID * config.k:
        log.warning(
            "few vectors per centroid: expect empty-cluster splits and noisy centroids",
            vectors=n,
            k=config.k,
            per_centroid=round(n / config.k, 1),
            advised=_ADVISED_PER_CENTROID,
        )
    resume = _Resume(checkpoints, sample, config) if checkpoints is not None else None
    history: list[IterationStats] = []
    start_centroids, first_iteration = None, 0
    if resume is not None and (restored := resume.load()) is not None:
        first_iteration, start_centroids, history = restored
        if log is not None:
            log.info("k-means resumed from checkpoint", iteration=first_iteration)
        for stats in history:
            if on_iteration is not None:
                on_iteration(stats)

    def each_iteration(stats: IterationStats, centroids: np.ndarray) -> None:
        history.append(stats)
        if resume is not None:
            resume.save(stats.iteration, centroids, history)
        if on_iteration is not None:
            on_iteration(stats)

    result = train_kmeans(
        sample,
        config.k,
        niter=config.niter,
        seed=config.seed,
        init=config.init,
        kmeanspp_sample=config.kmeanspp_sample,
        spherical=config.spherical,
        centroids=start_centroids,
        first_iteration=first_iteration,
        on_iteration=each_iteration,
        init_progress=None if log is None else _log_seeding(log),
    )
    # Unit entries, as the original wrote them (and renormalised them on load).
    entries = normalize_rows(result.centroids)
    report = quantization_report(sample, entries)
    kmeans_seconds = time.perf_counter() - started

    started = time.perf_counter()
    hnsw = build_hnsw(entries, config.hnsw_m, config.ef_construction, config.ef_search)
    queries = min(config.recall_sample, n)
    chosen = np.random.default_rng(config.seed + 1).choice(n, size=queries, replace=False)
    recall = hnsw_recall_at_1(hnsw, entries, sample[np.sort(chosen)])
    return Codebook(
        entries=entries,
        history=tuple(history),
        report=report,
        hnsw=hnsw,
        recall_at_1=recall,
        recall_queries=queries,
        vectors=n,
        kmeans_seconds=kmeans_seconds,
        hnsw_seconds=time.perf_counter() - started,
    )


def describe(codebook: Codebook, config: CodebookConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """The ``codebook_hnsw.json`` record: how to load the index, and how good both are."""
    report = codebook.report
    return {
        "format": "faiss IndexHNSWFlat",
        "file": HNSW_FILE,
        "load": f"faiss.read_index('{HNSW_FILE}'); index.hnsw.efSearch = {config.ef_search}",
        "codebook_file": FILE_NAME,
        "entries": int(codebook.entries.shape[0]),
        "dim": int(codebook.entries.shape[1]),
        "metric": "cosine",
        "faiss_metric": "METRIC_INNER_PRODUCT",
        "entries_normalized": True,
        "ids": f"row index in {FILE_NAME}",
        "m": config.hnsw_m,
        "ef_construction": config.ef_construction,
        "ef_search": config.ef_search,
        "recall_at_1": codebook.recall_at_1,
        "recall_queries": codebook.recall_queries,
        "recall_reference": "exact inner-product search (faiss IndexFlatIP) over the entries",
        "faiss_version": faiss.__version__,
        "codebook": {
            "vectors": codebook.vectors,
            "k": int(codebook.entries.shape[0]),
            "init": config.init,
            "niter": config.niter,
            "seed": config.seed,
            "spherical": config.spherical,
            "inertia": report.inertia,
            "mean_quantization_error": report.mean_error,
            "empty_clusters": report.empty_clusters,
            "largest_cluster": report.largest_cluster,
            "inertia_by_iteration": [it.inertia for it in codebook.history],
        },
        "corpus": stats,
    }


_STATE_FILE = "state.json"
_CENTROIDS_FILE = "centroids.safetensors"


class _Resume:
    """Per-iteration k-means checkpoints, valid only for the same vectors and settings."""

    def __init__(self, checkpoints: CheckpointManager, vectors: np.ndarray, config: CodebookConfig):
        self.checkpoints = checkpoints
        self.niter = config.niter
        digest = hashlib.sha256(np.ascontiguousarray(vectors).data).hexdigest()
        self.key = {
            "vectors_sha256": digest,
            "vectors": int(vectors.shape[0]),
            **{name: getattr(config, name) for name in ("k", "seed", "init", "spherical")},
            "kmeanspp_sample": config.kmeanspp_sample,
        }

    def load(self) -> tuple[int, np.ndarray, list[IterationStats]] | None:
        latest = self.checkpoints.latest()
        if latest is None:
            return None
        # Tensors in safetensors and the rest in JSON, as every phase's checkpoints: reading a
        # checkpoint from a shared store must never run code (docs/formats.md, checkpoint).
        check_checkpoint_files(latest.path, {_STATE_FILE, _CENTROIDS_FILE})
        state = json.loads((latest.path / _STATE_FILE).read_text())
        if state.get("key") != self.key or latest.step > self.niter:
            return None
        centroids = load_arrays(str(latest.path / _CENTROIDS_FILE))["centroids"]
        history = [IterationStats(**it) for it in state["history"]]
        return latest.step, centroids, history

    def save(self, iteration: int, centroids: np.ndarray, history: list[IterationStats]) -> None:
        with self.checkpoints.save(iteration) as folder:
            save_arrays(
                {"centroids": np.ascontiguousarray(centroids)}, str(folder / _CENTROIDS_FILE)
            )
            state = {"key": self.key, "history": [attrs.asdict(it) for it in history]}
            (folder / _STATE_FILE).write_text(json.dumps(state))


def _log_seeding(log: Any) -> Callable[[int, int], None]:
    # k-means++ at full size takes minutes (65,536 sequential rounds): show it is moving.
    def report(done: int, total: int) -> None:
        log.info("k-means++ seeding", centroids=done, of=total)

    return report


def _input(ctx: PhaseContext, name: str, file_name: str, pattern: str) -> Path:
    """The input's file named as the original names it, else its one file matching `pattern`
    (an artifact folder may also hold, say, per-epoch encoder checkpoints)."""
    path = ctx.inputs[name]
    if path.is_dir() and (path / file_name).is_file():
        return path / file_name
    return ctx.input_file(name, pattern)
