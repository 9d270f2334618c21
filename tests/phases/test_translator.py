"""Phases 1.1 (+1.3) and 1.2: tokenizer, encoder, decoder, their files, losses and resumption."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

import structlog  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import trainers  # noqa: E402

from voltx import CheckpointManager, PhaseContext, PhaseError  # noqa: E402
from voltx.context import MetricsReporter  # noqa: E402
from voltx.spec import PhaseSpec  # noqa: E402
from voltx.testing.phase_contract import PhaseContract  # noqa: E402
from voltx_phases._common.schedules import warmup_cosine_lr  # noqa: E402
from voltx_phases.datasets.schema import Document, Problem, write_jsonl  # noqa: E402
from voltx_phases.models import loading  # noqa: E402
from voltx_phases.models.decoder import CodeDecoder, DecoderShape  # noqa: E402
from voltx_phases.models.encoder import CodeEncoder, EncoderShape  # noqa: E402
from voltx_phases.translator import (  # noqa: E402
    checks,
    decoder_training,
    encoder_training,
    role_labels,
)
from voltx_phases.translator.config import DECODER_PROFILES, ENCODER_PROFILES  # noqa: E402
from voltx_phases.translator.pairs import function_pairs, load_pairs, split_pairs  # noqa: E402
from voltx_phases.translator.specs import PHASES  # noqa: E402
from voltx_phases.translator.tokenizer_training import (  # noqa: E402
    corpus_texts,
    new_tokenizer,
    train_tokenizer,
)

ENCODER_SPEC, DECODER_SPEC = PHASES

# --- a small corpus of documented functions, and a few problems -------------------------------

_VERBS = ("count", "merge", "filter", "sort", "scale", "clip", "reverse", "sum", "find", "split")
_NOUNS = ("words", "prices", "points", "lines", "scores", "names")
_BODIES = (
    "    return sum(1 for item in {noun} if item)\n",
    "    result = [item for item in {noun}]\n    return result[:limit]\n",
    "    if not {noun}:\n        return None\n    return max({noun})\n",
    "    try:\n        return sorted({noun})\n    except TypeError:\n        return list({noun})\n",
    "    total = 0\n    while {noun}:\n        total += {noun}.pop()\n    return total\n",
)


def _function(index: int) -> str:
    verb, noun = _VERBS[index % len(_VERBS)], _NOUNS[index % len(_NOUNS)]
    name = f"{verb}_{noun}_{index}"
    body = _BODIES[index % len(_BODIES)].format(noun=noun)
    # The docstring names the function, so that a few steps can learn to match the two sides.
    return f'def {name}({noun}, limit=10):\n    """Return {name} of the {noun}."""\n{body}'


def write_corpus(path: Path, functions: int = 40) -> Path:
    documents = [
        Document(
            content="import os\n\n\n" + "\n\n".join(_function(i) for i in range(s, s + 3)),
            path=f"pkg/module_{s}.py",
        )
        for s in range(0, functions, 3)
    ]
    write_jsonl(path, documents)
    return path


def write_problems(path: Path, count: int = 12) -> Path:
    problems = [
        Problem(
            id=f"T/{i}",
            query=f"Write a function that returns {i} plus the sum of a list.",
            solution=f"def solve(xs):\n    return {i} + sum(xs)\n",
            tests=(f"assert solve([1]) == {i + 1}",),
        )
        for i in range(count)
    ]
    write_jsonl(path, problems)
    return path


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """The tiny profile sets torch to one thread, process-wide; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("translator-data")
    write_corpus(folder / "stack_python.jsonl")
    write_problems(folder / "code_training_combined.jsonl")
    return folder


def data_inputs(folder: Path) -> dict[str, Path]:
    return {
        "stack_python": folder / "stack_python.jsonl",
        "code_training_combined": folder / "code_training_combined.jsonl",
    }


# --- running a phase's `run(ctx)` directly, with its metrics and checkpoints at hand -------


class Interrupted(Exception):
    """Raised from progress reporting to simulate a job killed mid-training."""


class InterruptingMetrics(MetricsReporter):
    def __init__(self, folder: Path, log: Any, at_step: int) -> None:
        super().__init__(folder, log)
        self.at_step = at_step

    def progress(self, step: int, total: int | None = None, **values: float) -> None:
        super().progress(step, total, **values)
        if step == self.at_step:
            raise Interrupted(step)


@attrs.frozen
class DirectRun:
    outputs: dict[str, Path]
    metrics: list[dict[str, Any]]


def run_directly(
    spec: PhaseSpec,
    config: Any,
    inputs: dict[str, Path],
    folder: Path,
    checkpoints: Path | None = None,
    metrics: Callable[[Path, Any], MetricsReporter] = MetricsReporter,
) -> DirectRun:
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {name: folder / "outputs" / name for name in spec.produces}
    for path in outputs.values():
        path.mkdir(parents=True, exist_ok=True)
    log = structlog.get_logger("test")
    reporter = metrics(folder, log)
    ctx = PhaseContext(
        run_id="test",
        phase_id=spec.id,
        config=config,
        inputs=inputs,
        outputs=outputs,
        work_dir=folder,
        log=log,
        metrics=reporter,
        checkpoints=CheckpointManager(checkpoints or folder / "checkpoints"),
        device="cpu",
        profile="tiny",
    )
    entry = encoder_training.run if spec is ENCODER_SPEC else decoder_training.run
    try:
        entry(ctx)
    finally:
        reporter.close()
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return DirectRun(outputs, rows)


@pytest.fixture(scope="module")
def encoder_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DirectRun:
    """Phase 1.1 on the tiny profile, uninterrupted."""
    folder = tmp_path_factory.mktemp("encoder-run")
    return run_directly(ENCODER_SPEC, ENCODER_PROFILES["tiny"], data_inputs(data_dir), folder)


@pytest.fixture(scope="module")
def decoder_inputs(
    data_dir: Path, encoder_run: DirectRun, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    # The tiny profile's 200 samples (190 corpus functions and the problems): a decoder that
    # reads the 16 slot vectors, 1.2's default context, needs its three epochs to be more than
    # the 18 steps the encoder's small data set would give to learn beyond padding.
    corpus = write_corpus(tmp_path_factory.mktemp("decoder-data") / "stack_python.jsonl", 190)
    return {**data_inputs(data_dir), "stack_python": corpus, **encoder_run.outputs}


@pytest.fixture(scope="module")
def decoder_run(
    decoder_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> DirectRun:
    folder = tmp_path_factory.mktemp("decoder-run")
    return run_directly(DECODER_SPEC, DECODER_PROFILES["tiny"], decoder_inputs, folder)


def epoch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if "epoch" in row]


# --- sizes and files in the original's layout -----------------------------------------------


def test_parameter_counts_at_full_size() -> None:
    with torch.device("meta"):
        encoder, decoder = CodeEncoder(EncoderShape()), CodeDecoder(DecoderShape())
    assert sum(p.numel() for p in encoder.parameters()) == 5_149_712
    assert sum(p.numel() for p in decoder.parameters()) == 5_246_848
    assert encoder.embed.weight.numel() == decoder.token_embed.numel() == 4_194_304


# Names and shapes as `docs/formats.md` lists them, not derived from the modules.
ORIGINAL_ENCODER = {
    "embed.weight": (32768, 128),
    "conv1.weight": (256, 128, 3),
    "conv1.bias": (256,),
    "conv2.weight": (256, 256, 5),
    "conv2.bias": (256,),
    "conv3.weight": (256, 256, 7),
    "conv3.bias": (256,),
    "role_head.weight": (16, 256),
    "role_head.bias": (16,),
    "embed_head.weight": (256, 256),
    "embed_head.bias": (256,),
}
ORIGINAL_DECODER = {
    "token_embed": (32768, 128),
    "input_proj.weight": (256, 128),
    "input_proj.bias": (256,),
    "pos_encoding": (256, 256),
    "self_norm.weight": (256,),
    "cross_norm.weight": (256,),
    "ffn_norm.weight": (256,),
    **{f"{p}_{x}.weight": (256, 256) for p in ("self", "cross") for x in "qkv"},
    **{f"{p}_{x}.bias": (256,) for p in ("self", "cross") for x in "qkv"},
    "ffn1.weight": (1024, 256),
    "ffn1.bias": (1024,),
    "ffn2.weight": (256, 1024),
    "ffn2.bias": (256,),
    "output_proj.weight": (128, 256),
    "output_proj.bias": (128,),
}


def write_original(path: Path, layout: dict[str, tuple[int, ...]], **changes: Any) -> Path:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        name: torch.randn(shape, generator=generator) * 0.05 for name, shape in layout.items()
    }
    for name, shape in changes.items():
        name = name.replace("__", ".")
        if shape is None:
            del tensors[name]
        else:
            tensors[name] = torch.zeros(shape)
    save_file(tensors, str(path))
    return path


def test_encoder_file_in_the_original_layout_loads(tmp_path: Path) -> None:
    path = write_original(tmp_path / "code_encoder.safetensors", ORIGINAL_ENCODER)
    assert loading.check_encoder_file(path) == EncoderShape()
    assert loading.check_encoder_file(tmp_path) == EncoderShape()  # the folder holding it
    encoder = loading.load_encoder(path)
    assert torch.equal(encoder.conv2.weight, load_file(str(path))["conv2.weight"])
    output = encoder(torch.tensor([[5, 6, 7]]))
    assert output.summary.shape == (1, 256)


def test_decoder_file_in_the_original_layout_loads(tmp_path: Path) -> None:
    path = write_original(tmp_path / "code_decoder.safetensors", ORIGINAL_DECODER)
    assert len(ORIGINAL_DECODER) == 25
    assert loading.check_decoder_file(tmp_path) == DecoderShape()
    decoder = loading.load_decoder(path)
    assert torch.equal(decoder.pos_encoding, load_file(str(path))["pos_encoding"])
    logits = decoder(torch.tensor([[0, 9, 10]]), torch.randn(1, 16, 256))
    assert logits.shape == (1, 3, 32768)


def test_a_wrong_shape_names_the_tensor(tmp_path: Path) -> None:
    bad = write_original(
        tmp_path / "enc.safetensors", ORIGINAL_ENCODER, conv2__weight=(256, 256, 3)
    )
    with pytest.raises(ValueError, match=r"'conv2\.weight'.*\[256, 256, 3\].*\[256, 256, 5\]"):
        loading.check_encoder_file(bad)
    with pytest.raises(ValueError, match=r"'conv2\.weight'"):
        loading.load_encoder(bad)
    bad = write_original(tmp_path / "dec.safetensors", ORIGINAL_DECODER, cross_v__bias=(128,))
    with pytest.raises(ValueError, match=r"'cross_v\.bias' has shape \[128\], expected \[256\]"):
        loading.check_decoder_file(bad)
    missing = write_original(tmp_path / "m.safetensors", ORIGINAL_DECODER, ffn_norm__weight=None)
    with pytest.raises(ValueError, match=r"missing tensor 'ffn_norm\.weight'"):
        loading.check_decoder_file(missing)
    (tmp_path / "junk.safetensors").write_bytes(b"not a header")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        loading.check_encoder_file(tmp_path / "junk.safetensors")


def test_tokenizer_check(encoder_run: DirectRun, tmp_path: Path) -> None:
    assert checks.check_tokenizer_file(encoder_run.outputs["code_tokenizer"]) <= 512
    texts = ["def f(x):\n    return x\n"] * 5
    assert (
        checks.check_tokenizer_file(_saved(train_tokenizer(texts, 64), tmp_path / "ok.json")) <= 64
    )
    swapped = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=64, special_tokens=["<unk>", "<pad>", "<bos>", "<eos>"]
    )
    swapped.train_from_iterator(texts, trainer=trainer)
    with pytest.raises(ValueError, match="<pad> has id 1, expected 0"):
        checks.check_tokenizer_file(_saved(swapped, tmp_path / "swapped.json"))
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ValueError, match="not a tokenizers JSON file"):
        checks.check_tokenizer_file(tmp_path / "junk.json")


def _saved(tokenizer: Any, path: Path) -> Path:
    tokenizer.save(str(path))
    return path


# --- data: pairs and role labels ---------------------------------------------------------------


def test_function_pairs_drop_the_docstring() -> None:
    source = (
        "import os\n\n@decorator\ndef outer(a):\n"
        '    """Outer does things.\n\n    More text.\n    """\n'
        "    def inner(b):\n        '''Inner.'''\n        return b\n    return inner(a)\n\n"
        'def only_doc():\n    """Nothing else."""\n\n'
        'def same_line(): """Skipped."""; return 1\n\n'
        "def undocumented():\n    return 2\n"
    )
    pairs = function_pairs(source)
    assert [p.text for p in pairs] == ["Outer does things.\n\nMore text.", "Inner."]
    assert pairs[0].code.startswith("def outer(a):\n    def inner(b):")
    assert "Outer does" not in pairs[0].code and "Inner." in pairs[0].code  # its own only
    assert pairs[1].code == "def inner(b):\n    return b"
    assert function_pairs("print 'python 2'") == []


def test_pairs_split_per_source(data_dir: Path) -> None:
    pairs = load_pairs(**_pair_paths(data_dir))
    assert len(pairs) == 42 + 12  # every corpus function is documented; then the problems
    train, valid = split_pairs(pairs, 0.1)
    assert len(train) == 38 + 11 and [p.source for p in valid] == ["corpus"] * 4 + ["problems"]
    assert train[0] == pairs[0] and valid[0] == pairs[38]
    capped = load_pairs(**_pair_paths(data_dir), max_pairs=20)
    assert len(capped) == 20 and sum(p.source == "problems" for p in capped) == 12


def _pair_paths(folder: Path) -> dict[str, Path]:
    inputs = data_inputs(folder)
    return {"corpus": inputs["stack_python"], "problems": inputs["code_training_combined"]}


def test_role_labels_state_machine() -> None:
    tokens = ["Ġdef", "Ġadd", "(", "a", ",", "Ġb", "):", "ĊĠĠĠ", "Ġreturn", "Ġa", "Ġ+", "Ġb", "Ċ"]
    clean = role_labels.role_labels(tokens, clean=True)
    assert clean == [0, 0, 2, 2, 2, 2, 2, 15, 3, 3, 3, 3, 15]
    # The original: `Ġdef` is not `def`, and `):` never closes the argument list.
    raw = role_labels.role_labels(tokens, clean=False)
    assert raw == [15, 15] + [2] * 11
    more = ["Ġfor", "Ġx", "Ġin", "Ġy", ":", "ĊĠĠĠ", "Ġif", "Ġx", "Ġ+=", "Ġ1", "Ċ", "import", "Ġos"]
    assert role_labels.role_labels(more) == [4, 15, 15, 15, 15, 15, 6, 15, 1, 15, 15, 5, 15]


def test_clean_role_labels_fire_on_real_code_and_raw_ones_do_not(data_dir: Path) -> None:
    corpus = data_inputs(data_dir)["stack_python"]
    tokenizer = train_tokenizer(corpus_texts(corpus, 200), vocab_size=512)
    code = "\n\n".join(function_pairs(_function(i))[0].code for i in range(5))
    ids = tokenizer.encode(code, add_special_tokens=False).ids
    clean = role_labels.RoleLabeller.from_tokenizer(tokenizer, clean=True).labels(ids)
    raw = role_labels.RoleLabeller.from_tokenizer(tokenizer, clean=False).labels(ids)
    keyword_roles = {0, 1, 3, 4, 6, 7}  # definition, assignment, return, loop, condition, except
    assert keyword_roles <= set(clean)
    assert sum(label in keyword_roles for label in clean) / len(ids) > 0.3
    # The original's: only a `def` at column 0 (no `Ġ`) matches; its `(` opens an argument
    # list that `):` never closes, so everything after it is 2.
    assert sum(label in keyword_roles for label in raw) / len(ids) < 0.1
    assert raw.count(2) / len(ids) > 0.8


# --- schedule and generation ---------------------------------------------------------------------


def test_warmup_then_cosine() -> None:
    def lr(step: int) -> float:
        return warmup_cosine_lr(step, max_lr=1.0, warmup_steps=10, total_steps=110)

    assert [lr(s) for s in (1, 5, 10)] == [0.1, 0.5, 1.0]
    assert lr(60) == pytest.approx(0.505)  # halfway down the cosine, to 1% of max
    assert lr(110) == pytest.approx(0.01) and lr(500) == pytest.approx(0.01)
    decay = [lr(s) for s in range(10, 111)]
    assert all(a > b for a, b in itertools.pairwise(decay))


def test_one_schedule_across_epochs(encoder_run: DirectRun) -> None:
    config = ENCODER_PROFILES["tiny"]
    rows = [row for row in encoder_run.metrics if "lr" in row]
    epochs = epoch_rows(encoder_run.metrics)
    total = epochs[-1]["step"]
    assert len(epochs) == config.epochs and total > 2 * epochs[0]["step"]
    for row in rows:
        expected = warmup_cosine_lr(
            row["step"], max_lr=config.lr, warmup_steps=config.warmup_steps, total_steps=total
        )
        assert row["lr"] == pytest.approx(expected)  # no restart at an epoch boundary


def test_generation_stops_at_eos() -> None:
    torch.manual_seed(0)
    decoder = CodeDecoder(DecoderShape(vocab_size=50, embed_dim=16, ffn_dim=32, max_len=12))
    with torch.no_grad():
        decoder.token_embed.normal_()
    context = torch.randn(2, 5, 256)
    free = decoder.generate(context, max_len=10, eos_id=None)
    assert [len(row) for row in free] == [10, 10]
    stop = free[0][3]  # pretend the fourth token generated is <eos>
    stopped = decoder.generate(context, max_len=10, eos_id=stop)
    assert stopped[0] == free[0][: free[0].index(stop)]
    assert stopped[1] == (free[1][: free[1].index(stop)] if stop in free[1] else free[1])


# --- training: learning, resumption, the phase contract ---------------------------------------


def test_encoder_learns(encoder_run: DirectRun) -> None:
    epochs = epoch_rows(encoder_run.metrics)
    assert epochs[-1]["train_contrastive"] < epochs[0]["train_contrastive"]
    assert epochs[-1]["valid_contrastive"] < epochs[0]["valid_contrastive"]
    coverage = next(r for r in encoder_run.metrics if "role_label_coverage" in r)
    assert coverage["role_label_coverage"] > 0.5
    steps = [row for row in encoder_run.metrics if "contrastive" in row]
    assert all(math.isfinite(row["loss"]) for row in steps)
    shape = loading.check_encoder_file(encoder_run.outputs["code_encoder"])
    assert (shape.vocab_size, shape.embed_dim, shape.hidden_dim) == (512, 32, 256)


def test_decoder_learns(decoder_run: DirectRun) -> None:
    epochs = epoch_rows(decoder_run.metrics)
    assert len(epochs) == DECODER_PROFILES["tiny"].epochs
    assert epochs[-1]["token_accuracy"] > epochs[0]["token_accuracy"]
    assert epochs[-1]["valid_loss"] < epochs[0]["valid_loss"]
    shape = loading.check_decoder_file(decoder_run.outputs["code_decoder"])
    assert (shape.vocab_size, shape.embed_dim, shape.ffn_dim, shape.max_len) == (512, 32, 128, 64)


def test_interrupted_training_resumes_to_identical_weights(
    data_dir: Path, encoder_run: DirectRun, tmp_path: Path
) -> None:
    config = ENCODER_PROFILES["tiny"]
    checkpoints = tmp_path / "checkpoints"
    # Checkpoints land every 10 steps and at each epoch's end (6 steps an epoch here): step 10
    # is mid-epoch, and step 11 is past it, so the rerun must restore the data position.
    interrupt_at = config.checkpoint_every_steps + 1

    def interrupting(folder: Path, log: Any) -> MetricsReporter:
        return InterruptingMetrics(folder, log, interrupt_at)

    with pytest.raises(Interrupted):
        run_directly(
            ENCODER_SPEC, config, data_inputs(data_dir), tmp_path / "a", checkpoints, interrupting
        )
    latest = CheckpointManager(checkpoints).latest()
    assert latest is not None and latest.step == config.checkpoint_every_steps

    resumed = run_directly(ENCODER_SPEC, config, data_inputs(data_dir), tmp_path / "b", checkpoints)
    first_step = min(row["step"] for row in resumed.metrics if "contrastive" in row)
    assert first_step == config.checkpoint_every_steps + config.log_every_steps
    expected = load_file(str(encoder_run.outputs["code_encoder"] / "code_encoder.safetensors"))
    actual = load_file(str(resumed.outputs["code_encoder"] / "code_encoder.safetensors"))
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    # The losses logged after the resume are those of the uninterrupted run, bit for bit.
    uninterrupted = {r["step"]: r["loss"] for r in encoder_run.metrics if "contrastive" in r}
    for row in resumed.metrics:
        if "contrastive" in row:
            assert row["loss"] == uninterrupted[row["step"]]


def test_a_diverging_loss_stops_with_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    config = attrs.evolve(ENCODER_PROFILES["tiny"], lr=1e30, warmup_steps=0)
    with pytest.raises(PhaseError, match=r"loss is (nan|inf) at step \d+ .*training diverged"):
        run_directly(ENCODER_SPEC, config, data_inputs(data_dir), tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_phases_train_on_cuda(data_dir: Path, tmp_path: Path) -> None:
    encoder_config = attrs.evolve(ENCODER_PROFILES["tiny"], device="cuda")
    encoder = run_directly(ENCODER_SPEC, encoder_config, data_inputs(data_dir), tmp_path / "e")
    decoder_config = attrs.evolve(DECODER_PROFILES["tiny"], device="cuda")
    inputs = {**data_inputs(data_dir), **encoder.outputs}
    decoder = run_directly(DECODER_SPEC, decoder_config, inputs, tmp_path / "d")
    assert epoch_rows(encoder.metrics)[-1]["valid_contrastive"] > 0
    assert loading.check_decoder_file(decoder.outputs["code_decoder"]).vocab_size == 512


class TestEncoderPhase(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        return ENCODER_SPEC

    @pytest.fixture
    def phase_inputs(self, data_dir: Path) -> dict[str, Path]:
        return data_inputs(data_dir)


class TestDecoderPhase(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        return DECODER_SPEC

    @pytest.fixture
    def phase_inputs(self, decoder_inputs: dict[str, Path]) -> dict[str, Path]:
        return decoder_inputs
