"""Phase 4.1: end-to-end fine-tuning on test results: learning signal, outputs, bad input,
stop request and bit-exact resume after SIGKILL.

The inputs are synthetic and tiny: problem frames with a learnable structure (`_frames`), 2.1's
three modules at the tiny size, and a decoder over a vocabulary of whole code lines, so one
sampled token decides the outcome: a passing function, a wrong answer, a crash or a syntax
error. Every problem's test is ``assert f() == 1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

from _frames import write_bias, write_problem_frames  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402

import voltx  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402
from voltx_phases._common.weights import save_weights  # noqa: E402
from voltx_phases.alignment.config import E2E_DATASETS  # noqa: E402
from voltx_phases.models.decoder import CodeDecoder, DecoderShape  # noqa: E402
from voltx_phases.models.diffusion_controller import DiffusionController  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.models.slot_attention import SlotAttention  # noqa: E402
from voltx_phases.models.vocabulary import SPECIAL_TOKENS  # noqa: E402

# One token per line of code: what each earns alone is in the comment.
CODE_TOKENS = (
    "def f(): return 1",  # passes
    "def f(): return 2",  # wrong answer
    "def f(): return 1 // 0",  # runtime error
    "pass",  # runtime error (no f)
    "x = (",  # compile error
    "def f(",  # compile error
)
PROBLEMS = 48


def _tokenizer(folder: Path) -> Path:
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *CODE_TOKENS))}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    path = folder / "code_tokenizer.json"
    tokenizer.save(str(path))
    return path


def write_inputs(folder: Path) -> dict[str, Path]:
    """Every input of 4.1, as files; names are the artifacts'."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    decoder = CodeDecoder(
        DecoderShape(
            vocab_size=len(SPECIAL_TOKENS) + len(CODE_TOKENS),
            embed_dim=16,
            ffn_dim=32,
            max_len=8,
        )
    )
    with torch.no_grad():
        # candle's zero tables would make every logit 0, whatever the context; a strong
        # cross-attention value makes the first token depend on the context, so the reasoned
        # slots decide what is written (a passing token has a few percent to start with).
        decoder.token_embed.normal_(0.0, 0.1)
        decoder.pos_encoding.normal_(0.0, 0.1)
        decoder.cross_v.weight.mul_(10.0)
    vfn = ScaledVFN(VfnShape(hidden_dim=64, num_blocks=1, time_freqs=4))
    with torch.no_grad():
        # A VFN that starts as the identity flow, as a trained one moves a frame little per
        # step; a random one would carry every frame to the same few states.
        vfn.exit.weight.zero_()
    paths = {"code_tokenizer": _tokenizer(folder)}
    for name, module in (
        ("code_decoder", decoder),
        ("scaled_vfn", vfn),
        ("slot_attention", SlotAttention()),
        ("diffusion_controller", DiffusionController()),
    ):
        (folder / name).mkdir()
        save_weights(module, folder / name / f"{name}.safetensors")
        paths[name] = folder / name / f"{name}.safetensors"
    paths["code_attention_bias"] = write_bias(folder / "bias")
    paths["problem_frames"] = write_problem_frames(folder / "frames", problems=PROBLEMS)
    # _frames names problem p of the k-th dataset of PROBLEM_DATASETS "<dataset>/<k>-<p>".
    from voltx_phases.soft_core.config import PROBLEM_DATASETS

    for dataset in E2E_DATASETS:
        index = PROBLEM_DATASETS.index(dataset)
        path = folder / "datasets" / dataset / f"{dataset}.jsonl"
        path.parent.mkdir(parents=True)
        lines = [
            json.dumps(
                {
                    "id": f"{dataset}/{index}-{p}",
                    "query": "Write f returning 1",
                    "solution": "def f():\n    return 1\n",
                    "tests": ["assert f() == 1"],
                }
            )
            for p in range(PROBLEMS)
        ]
        path.write_text("\n".join(lines) + "\n")
        paths[dataset] = path
    return paths


@pytest.fixture
def inputs(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    for name, path in write_inputs(tmp_path / "inputs").items():
        store.add(name, path)
    yield url, tmp_path / "work"


def _run(url: str, work: Path, **overrides: Any) -> voltx.RunResult:  # type: ignore[name-defined]
    return voltx.run(
        "4.1",
        backend=InProcessBackend(work_dir=work),
        store=url,
        profile="tiny",
        overrides={f"4.1.{key}": value for key, value in {"max_tokens": 1, **overrides}.items()},
    )


def _report(url: str, out: Path) -> dict[str, Any]:
    folder = ArtifactStore.open(url).get("vfn_e2e_report", out)
    return dict(json.loads((folder / "metrics.json").read_text()))


def test_tiny_run_learns_from_test_results(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    started = time.monotonic()
    result = _run(url, work)
    assert result.ok, result.phases["4.1"].reason
    assert time.monotonic() - started < 60
    report = _report(url, work / "report")
    rows = [row for row in report["rows"] if "reward" in row]
    assert len(rows) == 18  # the tiny profile logs every step: 3 stages of 6
    assert all(0.0 <= row["compile_rate"] <= 1.0 for row in rows)
    assert all(0.0 <= row["pass_rate"] <= 1.0 for row in rows)
    summary = report["summary"]
    assert summary["last_reward"] > summary["first_reward"], summary
    # REINFORCE must not wreck the flow the VFN learned.
    assert summary["last_valid_loss"] < 3.0 * summary["first_valid_loss"], summary
    store = ArtifactStore.open(url)
    names = sorted(f.path for f in store.resolve("vfn_e2e").files)
    assert names == [
        "diffusion_controller.safetensors",
        "scaled_vfn.safetensors",
        "slot_attention.safetensors",
    ]
    pngs = sorted(f.path for f in store.resolve("vfn_e2e_report").files if f.path.endswith("png"))
    assert pngs == ["loss_curve.png", "reward_curve.png"]


def test_outputs_load_as_2_1_artifacts(inputs: tuple[str, Path]) -> None:
    from voltx_phases.models.loading import (
        load_diffusion_controller,
        load_scaled_vfn,
        load_slot_attention,
    )

    url, work = inputs
    assert _run(url, work, stages=[{"name": "s", "datasets": ["humaneval"], "steps": 2}]).ok
    folder = ArtifactStore.open(url).get("vfn_e2e", work / "out")
    assert load_scaled_vfn(folder).shape.hidden_dim == 64
    load_slot_attention(folder)
    load_diffusion_controller(folder)


def test_a_problem_without_frames_is_refused(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path / "inputs")
    mbpp = paths["mbpp"]
    mbpp.write_text(mbpp.read_text() + json.dumps(
        {"id": "mbpp/new", "query": "q", "solution": "s", "tests": ["assert True"]}
    ) + "\n")  # fmt: skip
    url = memory_store_url()
    store = ArtifactStore.open(url)
    for name, path in paths.items():
        store.add(name, path)
    reason = _run(url, tmp_path / "work").phases["4.1"].reason
    assert "dataset mbpp: problem 'mbpp/new' has no frame" in reason
    assert "rerun phase 2.0" in reason and "\n" not in reason


def test_unknown_dataset_in_a_stage_is_refused(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    stages = [{"name": "s", "datasets": ["humaneval", "leetcode"], "steps": 2}]
    reason = _run(url, work, stages=stages).phases["4.1"].reason
    assert "stage s lists unknown dataset 'leetcode'" in reason and "\n" not in reason


def test_too_few_problems_for_a_batch_is_refused(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    result = _run(url, work, problems_per_step=500)
    reason = result.phases["4.1"].reason
    assert "stage stage1: 96 problem(s) with tests" in reason
    assert "4.1.problems_per_step" in reason


def test_shaped_rewards_out_of_order_are_refused(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    with pytest.raises(voltx.ConfigError, match="compile_error < runtime_error"):
        _run(url, work, runtime_error_reward=-2.0)


# -- bit-exact resume after SIGKILL ------------------------------------------------------------


def _cli(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _prepare(project: Path) -> None:
    project.mkdir(parents=True)
    for name, path in write_inputs(project.parent / "inputs").items():
        process = _cli(project, "artifacts", "add", name, str(path))
        assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""


RUN_ARGS = (
    "run",
    "4.1",
    "--max-attempts",
    "10",
    "--set",
    "4.1.checkpoint_every_steps=1",
    "--set",
    "4.1.max_tokens=1",
)


def _digests(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {name: store.resolve(name).digest for name in ("vfn_e2e", "vfn_e2e_report")}


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_mid_phase_resumes_bit_exact(tmp_path: Path) -> None:
    baseline, interrupted = tmp_path / "a" / "project", tmp_path / "b" / "project"
    _prepare(baseline)
    _prepare(interrupted)
    reference = _cli(baseline, *RUN_ARGS)
    _, reference_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_err

    process = _cli(interrupted, *RUN_ARGS)
    # Mid stage 1, right at the stage 1 -> 2 boundary (a batch already sampled), mid stage 3.
    kills = kill_job_at_checkpoints(process, interrupted, "4.1", [2, 6, 14])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 3, f"only killed at {kills}"
    assert err.count("job lost; resubmitting") == 3
    assert _digests(interrupted) == _digests(baseline)


def test_stop_request_checkpoints_and_a_rerun_finishes(
    inputs: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voltx.context import PhaseContext

    url, work = inputs
    monkeypatch.setattr(PhaseContext, "stop_requested", lambda _self: True)
    stopped = _run(url, work, checkpoint_every_steps=100)
    assert not stopped.ok
    # Each attempt checkpoints after its first step and stops; the next resumes from there.
    reason = stopped.phases["4.1"].reason
    attempts = stopped.phases["4.1"].attempts
    assert f"stopped on request at step {attempts}; its checkpoint is kept" in reason
    monkeypatch.undo()
    assert _run(url, work, checkpoint_every_steps=100).ok
    rows = [row for row in _report(url, work / "report")["rows"] if "reward" in row]
    # The rerun resumed where the stops left off, their rows restored from the checkpoint.
    assert [row["step"] for row in rows] == list(range(1, 19))
    # The rerun's job is the one that wrote its metrics last (job ids do not sort by time).
    last = max((work / "jobs").glob("*/metrics.jsonl"), key=lambda path: path.stat().st_mtime_ns)
    logged = [json.loads(line) for line in last.read_text().splitlines()]
    assert min(row["step"] for row in logged if "reward" in row) == attempts + 1
