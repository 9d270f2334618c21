"""Phase 0.3: the codebook file layout, k-means and its reports, corpus encoding, the phase."""

from __future__ import annotations

import itertools
import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

torch = pytest.importorskip("torch")
faiss = pytest.importorskip("faiss")

import numpy as np  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

import voltx  # noqa: E402
from voltx.checkpoints import CheckpointManager  # noqa: E402
from voltx.plugins import host  # noqa: E402
from voltx.spec import PhaseSpec  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import (  # noqa: E402
    InProcessBackend,
    memory_store_url,
    phase_plugin,
    registered_plugin,
)
from voltx.testing.phase_contract import PhaseContract  # noqa: E402
from voltx_phases._common.weights import save_weights  # noqa: E402
from voltx_phases.codebook import kmeans  # noqa: E402
from voltx_phases.codebook.codebook_building import build_codebook  # noqa: E402
from voltx_phases.codebook.codebook_file import (  # noqa: E402
    CodebookFormatError,
    check_codebook_file,
    codebook_file_size,
    read_codebook,
    write_codebook,
)
from voltx_phases.codebook.config import CODEBOOK_PROFILES  # noqa: E402
from voltx_phases.codebook.corpus_encoding import (  # noqa: E402
    _cut_point,
    encode_corpus,
    load_tokenizer,
    tokenize,
)
from voltx_phases.codebook.specs import PHASES  # noqa: E402
from voltx_phases.datasets.schema import Document, read_documents, write_jsonl  # noqa: E402
from voltx_phases.models.encoder import CodeEncoder, EncoderShape, encode_frames  # noqa: E402
from voltx_phases.models.loading import load_encoder  # noqa: E402

SPEC = PHASES[0]


def _unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, 256))
    return kmeans.normalize_rows(rows)


def _clustered(n: int, centers: int, seed: int = 0, noise: float = 0.15) -> np.ndarray:
    """Unit vectors around `centers` random unit centres (cosine to the centre about 0.9)."""
    rng = np.random.default_rng(seed)
    middle = _unit_rows(centers, seed + 1)
    points = middle[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, 256)) / 4
    return kmeans.normalize_rows(points)


# --- codebook_code.bin ----------------------------------------------------------------------


def test_file_layout_is_byte_exact(tmp_path: Path) -> None:
    entries = _unit_rows(3)
    path = tmp_path / "codebook_code.bin"
    write_codebook(path, entries)
    raw = path.read_bytes()
    assert raw[:16] == b"VXCB" + (1).to_bytes(4, "little") + (3).to_bytes(4, "little") + (
        256
    ).to_bytes(4, "little")
    assert len(raw) == 16 + 3 * 256 * 4 == codebook_file_size(3)
    assert raw[16:] == entries.astype("<f4").tobytes()
    assert codebook_file_size(65_536) == 67_108_880


def test_full_size_file_and_round_trip(tmp_path: Path) -> None:
    entries = _unit_rows(65_536)
    path = tmp_path / "codebook_code.bin"
    write_codebook(path, entries)
    assert path.stat().st_size == 67_108_880
    reloaded = read_codebook(path)
    assert reloaded.dtype == np.float32 and reloaded.shape == (65_536, 256)
    assert np.array_equal(reloaded, entries)


def test_reads_a_file_written_in_the_original_layout(tmp_path: Path) -> None:
    rows = np.zeros((2, 256), dtype=np.float32)
    rows[0, :2] = (3.0, 4.0)  # not unit: the loader re-normalises, as the original's
    rows[1, 255] = -0.5
    path = tmp_path / "original" / "codebook_code.bin"
    path.parent.mkdir()
    header = struct.pack("<4sIII", b"VXCB", 1, 2, 256)
    path.write_bytes(header + struct.pack("<512f", *rows.ravel()))
    loaded = read_codebook(path)
    assert np.allclose(loaded[0, :2], (0.6, 0.8)) and not loaded[0, 2:].any()
    assert loaded[1, 255] == -1.0
    check_codebook_file(path.parent)  # the artifact check takes the folder too
    check_codebook_file(path)


def _bad_file(case: str) -> bytes:
    rows = _unit_rows(2)
    magic, version, count, dim = b"VXCB", 1, 2, 256
    if case == "magic":
        magic = b"VXCA"
    elif case == "version":
        version = 2
    elif case == "entry_count_zero":
        count = 0
    elif case == "entry_count_large":
        count = 65_537
    elif case == "dim":
        dim = 128
    elif case == "nan":
        rows[1, 7] = np.nan
    elif case == "zero":
        rows[1] = 0.0
    data = struct.pack("<4sIII", magic, version, count, dim) + rows.astype("<f4").tobytes()
    if case == "truncated":
        data = data[:-4]
    elif case == "trailing":
        data += b"\0"
    elif case == "header":
        data = data[:10]
    return data


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("magic", "magic"),
        ("version", "version"),
        ("entry_count_zero", "entry_count"),
        ("entry_count_large", "entry_count"),
        ("dim", "dim"),
        ("truncated", "file size"),
        ("trailing", "file size"),
        ("header", "header"),
        ("nan", "entry 1"),
        ("zero", "entry 1"),
    ],
)
def test_each_bad_field_is_named(tmp_path: Path, case: str, field: str) -> None:
    path = tmp_path / "codebook_code.bin"
    path.write_bytes(_bad_file(case))
    with pytest.raises(ValueError, match=field) as caught:
        read_codebook(path)
    assert isinstance(caught.value, CodebookFormatError) and caught.value.field == field
    with pytest.raises(ValueError, match=field):
        check_codebook_file(tmp_path)


def test_writer_refuses_what_the_loader_would(tmp_path: Path) -> None:
    with pytest.raises(CodebookFormatError, match="dim"):
        write_codebook(tmp_path / "a.bin", np.ones((4, 128), dtype=np.float32))
    with pytest.raises(CodebookFormatError, match="entry 0"):
        write_codebook(tmp_path / "a.bin", np.zeros((4, 256), dtype=np.float32))
    with pytest.raises(CodebookFormatError, match="file"):
        check_codebook_file(tmp_path)  # a folder without the file


# --- k-means ----------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_inertia_falls_and_recall_is_high(init: str) -> None:
    x = _clustered(4000, centers=48)
    result = kmeans.train_kmeans(x, 48, niter=8, seed=3, init=init)
    inertia = [it.inertia for it in result.history]
    assert [it.iteration for it in result.history] == list(range(1, 9))
    assert inertia[-1] < 0.9 * inertia[0]
    # Lloyd iterations never raise the objective (up to float rounding).
    assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(inertia))
    entries = kmeans.normalize_rows(result.centroids)
    report = kmeans.quantization_report(x, entries)
    assert report.inertia <= inertia[-1] * (1 + 1e-4)
    hnsw = kmeans.build_hnsw(entries)
    assert hnsw.hnsw.efSearch == 32 and hnsw.metric_type == faiss.METRIC_INNER_PRODUCT
    assert kmeans.hnsw_recall_at_1(hnsw, entries, x[:1000]) >= 0.9


def test_recall_at_1_on_many_entries() -> None:
    x = _clustered(6000, centers=200, seed=5)
    entries = kmeans.normalize_rows(kmeans.train_kmeans(x, 512, niter=4, seed=1).centroids)
    hnsw = kmeans.build_hnsw(entries, m=24, ef_construction=200, ef_search=32)
    assert kmeans.hnsw_recall_at_1(hnsw, entries, x[:2000]) >= 0.9


def test_quantization_report_counts_empty_clusters() -> None:
    centres = _unit_rows(8, seed=2)
    x = _clustered(800, centers=8, seed=1)  # _clustered(seed=1) uses _unit_rows(seed=2) centres
    # Two entries nobody is nearest to: a random direction, and a centre's exact opposite.
    entries = np.vstack([centres, _unit_rows(1, seed=99), -centres[:1]])
    report = kmeans.quantization_report(x, entries)
    assert report.empty_clusters == 2
    distances = ((x[:, None, :] - entries[None, :, :]) ** 2).sum(-1).min(1)
    assert report.inertia == pytest.approx(float(distances.sum()), rel=1e-4)
    assert report.mean_error == pytest.approx(float(np.sqrt(distances).mean()), rel=1e-4)
    assert report.largest_cluster >= 800 // 8


def test_kmeanspp_init_is_deterministic_by_seed_and_spreads() -> None:
    x = _clustered(1000, centers=6, seed=7, noise=0.01)
    first = kmeans.kmeanspp_init(x, 6, seed=11)
    assert np.array_equal(first, kmeans.kmeanspp_init(x, 6, seed=11))
    assert not np.array_equal(first, kmeans.kmeanspp_init(x, 6, seed=12))
    # Every seed is a data row, and D^2 sampling puts one in each well-separated cluster.
    rows = {tuple(row) for row in x}
    assert all(tuple(c) in rows for c in first)
    owner = (first @ _unit_rows(6, seed=8).T).argmax(1)
    assert sorted(owner) == list(range(6))
    calls: list[tuple[int, int]] = []
    kmeans.kmeanspp_init(_unit_rows(2100), 2050, seed=1, progress=lambda *c: calls.append(c))
    assert calls == [(1024, 2050), (2048, 2050)]
    # A subsample is drawn by seed too.
    sub = kmeans.kmeanspp_init(x, 6, seed=11, sample_size=100)
    assert np.array_equal(sub, kmeans.kmeanspp_init(x, 6, seed=11, sample_size=100))


def test_resumed_kmeans_matches_an_uninterrupted_run() -> None:
    x = _clustered(3000, centers=32, seed=4)
    whole = kmeans.train_kmeans(x, 32, niter=6, seed=5)
    half = kmeans.train_kmeans(x, 32, niter=3, seed=5)
    rest = kmeans.train_kmeans(x, 32, niter=6, seed=5, centroids=half.centroids, first_iteration=3)
    assert [it.iteration for it in rest.history] == [4, 5, 6]
    assert np.allclose(rest.centroids, whole.centroids, atol=1e-6)


def test_too_few_vectors_and_bad_init_are_refused() -> None:
    x = _unit_rows(10)
    with pytest.raises(ValueError, match="at least k = 11"):
        kmeans.train_kmeans(x, 11, niter=1, seed=0)
    with pytest.raises(ValueError, match="init"):
        kmeans.train_kmeans(x, 2, niter=1, seed=0, init="afk-mc2")


def test_sampling_compacts_rows_in_place() -> None:
    x = np.arange(40 * 256, dtype=np.float32).reshape(40, 256)
    original = x.copy()
    sample = kmeans.sample_rows_inplace(x, 15, seed=3)
    assert sample.base is x or sample.base is x.base  # a view: no second array
    chosen = np.sort(np.random.default_rng(3).choice(40, size=15, replace=False))
    assert np.array_equal(sample, original[chosen])
    assert kmeans.sample_rows_inplace(x, 100, seed=3) is x


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)

    warning = info


def test_build_codebook_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    x = _clustered(2000, centers=64, seed=9)
    tiny = CODEBOOK_PROFILES["tiny"]
    whole = build_codebook(x.copy(), tiny)
    checkpoints = CheckpointManager(tmp_path / "checkpoints")
    build_codebook(x.copy(), attrs.evolve(tiny, niter=5), checkpoints=checkpoints)
    assert checkpoints.latest() is not None and checkpoints.latest().step == 5
    log, seen = _Log(), []
    resumed = build_codebook(
        x.copy(), tiny, log=log, checkpoints=checkpoints, on_iteration=seen.append
    )
    assert "k-means resumed from checkpoint" in log.events
    assert [it.iteration for it in seen] == list(range(1, 9))  # restored ones reported too
    assert np.allclose(resumed.entries, whole.entries, atol=1e-6)
    # Other vectors or settings never resume from it.
    log = _Log()
    build_codebook(x.copy(), attrs.evolve(tiny, seed=7), log=log, checkpoints=checkpoints)
    assert "k-means resumed from checkpoint" not in log.events


def test_a_planted_file_in_a_kmeans_checkpoint_is_refused(tmp_path: Path) -> None:
    """0.3's checkpoints are safetensors and JSON too: anything else is refused, never loaded."""
    import pickle

    from voltx_phases._common.training_state import CheckpointFormatError

    x = _clustered(600, centers=64, seed=3)
    tiny = CODEBOOK_PROFILES["tiny"]
    checkpoints = CheckpointManager(tmp_path / "checkpoints")
    build_codebook(x.copy(), attrs.evolve(tiny, niter=2), checkpoints=checkpoints)
    latest = checkpoints.latest()
    assert latest is not None
    assert sorted(p.name for p in latest.path.iterdir()) == [
        "MANIFEST.json",
        "centroids.safetensors",
        "state.json",
    ]
    (latest.path / "centroids.npy").write_bytes(pickle.dumps(np.zeros((64, 256), np.float32)))
    with pytest.raises(
        CheckpointFormatError, match=r"centroids\.npy is not part of the checkpoint"
    ):
        build_codebook(x.copy(), tiny, checkpoints=checkpoints)


# --- corpus encoding --------------------------------------------------------------------------


def _snippets() -> list[str]:
    rng = random.Random(0)
    names = ["alpha", "beta", "gamma", "delta", "load", "parse", "total", "merge", "split", "walk"]
    texts = []
    for i in range(100):
        a, b = rng.sample(names, 2)
        body = "\n".join(f"    {a}_{j} = {b}({j}, x) + {rng.randint(0, 99)}" for j in range(i % 7))
        kind = i % 4
        if kind == 0:
            texts.append(
                f'def {a}_{i}(x, y={i}):\n    """{b} the input."""\n{body}\n    return x\n'
            )
        elif kind == 1:
            texts.append(
                f"class {a.title()}{i}:\n    def __init__(self):\n        self.{b} = []\n"
                f"\n    def {b}(self, item):\n        self.{b}.append(item)\n{body}\n"
            )
        elif kind == 2:
            texts.append(
                f"for {a} in range({i}):\n    if {a} % 3 == 0:\n        print({a}, '{b}')\n{body}\n"
            )
        else:  # Windows line endings, tabs and non-ASCII text
            texts.append(f"import {a}\r\n\r\ndef {b}():\r\n\treturn {a}.{b}('naïve — {i}')\r\n")
    # Long files take the tokenizer's cut path; a blank-line-heavy one and one without newlines.
    texts.append("\n".join(f"value_{i} = compute({i}) * {i % 13}" for i in range(900)))
    texts.append("\n\n\n".join(f"def f{i}():  \n    pass  " for i in range(700)))
    texts.append("x = [" + ", ".join(str(i) for i in range(3000)) + "]")
    return texts


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codebook-inputs")
    texts = _snippets()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(folder / "code_tokenizer.json"))
    torch.manual_seed(0)
    encoder = CodeEncoder(EncoderShape(vocab_size=300, embed_dim=32))
    save_weights(encoder, folder / "code_encoder.safetensors")
    # Two too short and one too long: skipped and counted, not encoded.
    documents = [Document("x = 1"), Document("pass\n"), Document("y = 2\n" * 10_000)]
    documents += [Document(text, path=f"src/file_{i}.py") for i, text in enumerate(texts)]
    write_jsonl(folder / "stack_python.jsonl", documents)
    return {
        "code_tokenizer": folder / "code_tokenizer.json",
        "code_encoder": folder / "code_encoder.safetensors",
        "stack_python": folder / "stack_python.jsonl",
    }


@pytest.mark.parametrize("max_tokens", [512, 24])
def test_tokenize_equals_encode_then_truncate(assets: dict[str, Path], max_tokens: int) -> None:
    tokenizer = load_tokenizer(assets["code_tokenizer"])
    texts = [d.content for d in read_documents(assets["stack_python"])]
    limit = 8 * max_tokens
    assert sum(_cut_point(t, limit) is not None for t in texts) >= 2  # the cut path is exercised
    expected = [tokenizer.encode(t, add_special_tokens=False).ids[:max_tokens] for t in texts]
    assert tokenize(tokenizer, texts, max_tokens) == expected


def test_encoder_fills_one_array_matching_per_document_frames(assets: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(assets["code_tokenizer"])
    encoder = load_encoder(assets["code_encoder"]).eval()
    assert encoder.shape == EncoderShape(vocab_size=300, embed_dim=32)
    documents = list(read_documents(assets["stack_python"]))
    corpus = encode_corpus(documents, tokenizer, encoder, max_files=24, batch_size=5)
    stats = corpus.stats
    assert stats.files_encoded == 24 and stats.skipped_size == 3 and stats.files_read == 27
    # One preallocated array of max_files * 16 rows, sliced: the vectors are a view of it.
    assert corpus.vectors.base is not None and corpus.vectors.base.shape == (24 * 16, 256)
    assert corpus.vectors.shape == (stats.vectors, 256) and stats.vectors > 0
    assert set(corpus.documents.tolist()) == set(range(3, 27))
    for index in range(3, 27):
        ids = tokenizer.encode(documents[index].content, add_special_tokens=False).ids[:512]
        with torch.inference_mode():
            frames = encode_frames(encoder, torch.tensor([ids]), torch.tensor([len(ids)]))
        present = frames.present[0].numpy()
        rows = corpus.documents == index
        assert np.array_equal(corpus.slots[rows], np.flatnonzero(present))
        assert np.allclose(corpus.vectors[rows], frames.vectors[0].numpy()[present], atol=1e-5)
    # The row order does not depend on the batch size.
    again = encode_corpus(documents, tokenizer, encoder, max_files=24, batch_size=24)
    assert np.array_equal(again.documents, corpus.documents)
    assert np.allclose(again.vectors, corpus.vectors, atol=1e-5)


# --- the phase --------------------------------------------------------------------------------


@pytest.fixture
def registered_spec() -> Iterator[None]:
    if SPEC.id in host().registry().phases:
        yield
        return
    with registered_plugin(phase_plugin(*PHASES)):
        yield


def _metrics(work: Path) -> list[dict[str, Any]]:
    (job,) = sorted((work / "jobs").iterdir())[-1:]
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]


class TestCodebookPhase(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        return SPEC

    @pytest.fixture
    def phase_inputs(self, assets: dict[str, Path]) -> dict[str, Path]:
        return assets


def _store_with(assets: dict[str, Path]) -> tuple[str, ArtifactStore]:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    for name, path in assets.items():
        store.add(name, path)
    return url, store


def test_tiny_run_writes_a_checked_codebook(
    assets: dict[str, Path], registered_spec: None, tmp_path: Path
) -> None:
    url, store = _store_with(assets)
    work = tmp_path / "work"
    result = voltx.run("0.3", backend=InProcessBackend(work_dir=work), store=url, profile="tiny")
    assert result.phases["0.3"].status == "succeeded", result.phases["0.3"].reason

    code = store.get("codebook_code", tmp_path / "code")
    path = code / "codebook_code.bin"
    raw = path.read_bytes()
    assert raw[:16] == struct.pack("<4sIII", b"VXCB", 1, 64, 256)
    assert len(raw) == 16 + 64 * 256 * 4
    entries = read_codebook(path)
    assert np.allclose(np.linalg.norm(entries, axis=1), 1.0, atol=1e-6)

    hnsw_folder = store.get("codebook_hnsw", tmp_path / "hnsw")
    description = json.loads((hnsw_folder / "codebook_hnsw.json").read_text())
    index = faiss.read_index(str(hnsw_folder / description["file"]))
    assert index.ntotal == 64 and index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert (description["m"], description["ef_construction"], description["ef_search"]) == (
        24,
        200,
        32,
    )
    assert description["recall_at_1"] >= 0.9
    assert description["corpus"]["files_encoded"] == 103
    assert description["corpus"]["skipped_size"] == 3

    rows = _metrics(work)
    by_step = {r["step"]: r["inertia"] for r in rows if "inertia" in r}
    inertia = [by_step[step] for step in sorted(by_step)]
    assert len(inertia) == 8 and inertia[-1] < inertia[0]
    final = next(r for r in rows if "final_inertia" in r)
    assert final["empty_clusters"] >= 0 and final["hnsw_recall_at_1"] >= 0.9
    assert final["final_inertia"] <= inertia[-1] * 1.0001


def test_fewer_vectors_than_k_fails_clearly(assets: dict[str, Path], registered_spec: None) -> None:
    url, _ = _store_with(assets)
    result = voltx.run(
        "0.3",
        backend=InProcessBackend(),
        store=url,
        profile="tiny",
        overrides={"0.3.k": 60_000},
    )
    phase = result.phases["0.3"]
    assert phase.status == "failed" and "fewer than k = 60000" in (phase.reason or "")
