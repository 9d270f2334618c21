"""The phase contract, run on the example plugin's phases and on voltx-phases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import EXAMPLE
from voltx.spec import PhaseSpec
from voltx.testing.phase_contract import PhaseContract


@pytest.fixture(scope="module")
def example_plugin() -> Iterator[object]:
    import sys

    sys.path.insert(0, str(EXAMPLE / "src"))
    try:
        from voltx_example_textstats import plugin

        yield plugin
    finally:
        sys.path.remove(str(EXAMPLE / "src"))


class TestCorpusPhase(PhaseContract):
    @pytest.fixture
    def phase_spec(self, example_plugin: object, tmp_path: Path) -> PhaseSpec:
        spec: PhaseSpec = example_plugin.PHASES[0]  # type: ignore[attr-defined]
        return spec


class TestTokensPhase(PhaseContract):
    @pytest.fixture
    def phase_spec(self, example_plugin: object) -> PhaseSpec:
        spec: PhaseSpec = example_plugin.PHASES[1]  # type: ignore[attr-defined]
        return spec

    @pytest.fixture
    def phase_inputs(self, tmp_path: Path) -> dict[str, Path]:
        corpus = tmp_path / "corpus.jsonl"
        docs = [{"path": "a.py", "content": "def f(x):\n    return x + 1\n"}]
        corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
        return {"ex_corpus": corpus}


def _voltx_phase(phase_id: str) -> PhaseSpec:
    pytest.importorskip("voltx_phases")
    from voltx_phases.plugin import PHASES

    (spec,) = (spec for spec in PHASES if spec.id == phase_id)
    return spec


class TestCodeAttentionBias(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        return _voltx_phase("0.4")


class TestProblemFrames(PhaseContract):
    """Phase 2.0 on a tiny tokenizer and a freshly initialised tiny encoder."""

    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        pytest.importorskip("torch")
        return _voltx_phase("2.0")

    @pytest.fixture
    def phase_inputs(self, tmp_path: Path) -> dict[str, Path]:
        from voltx_phases._common.weights import save_weights
        from voltx_phases.datasets.schema import Problem, write_jsonl
        from voltx_phases.models.encoder import CodeEncoder, EncoderShape
        from voltx_phases.soft_core.config import PROBLEM_DATASETS
        from voltx_phases.translator.tokenizer_training import train_tokenizer

        solutions = [f"def add_{i}(a, b):\n    return a + b * {i}\n" for i in range(6)]
        tokenizer = train_tokenizer(solutions * 4, vocab_size=300)
        tokenizer.save(str(tmp_path / "code_tokenizer.json"))
        encoder = CodeEncoder(EncoderShape(vocab_size=300, embed_dim=16, max_seq_len=64))
        save_weights(encoder, tmp_path / "code_encoder.safetensors")
        inputs = {
            "code_tokenizer": tmp_path / "code_tokenizer.json",
            "code_encoder": tmp_path / "code_encoder.safetensors",
        }
        for dataset in PROBLEM_DATASETS:
            problems = [
                Problem(f"{dataset}/{i}", f"Add a to {i} times b.", text, ("assert True",))
                for i, text in enumerate(solutions)
            ]
            write_jsonl(tmp_path / f"{dataset}.jsonl", problems)
            inputs[dataset] = tmp_path / f"{dataset}.jsonl"
        return inputs


class TestVfnFlowMatching(PhaseContract):
    """Phase 2.1 (tiny profile) on synthetic frames with a learnable query -> solution map."""

    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        pytest.importorskip("torch")
        return _voltx_phase("2.1")

    @pytest.fixture
    def phase_inputs(self, tmp_path: Path) -> dict[str, Path]:
        from phases._frames import write_bias, write_problem_frames

        return {
            # 16 problems a dataset: one batch of 8 per epoch, so the contract stays quick.
            "problem_frames": write_problem_frames(tmp_path / "frames", problems=16),
            "code_attention_bias": write_bias(tmp_path / "bias"),
        }
