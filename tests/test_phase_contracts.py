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


class TestCodeAttentionBias(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        pytest.importorskip("voltx_phases")
        from voltx_phases.plugin import PHASES

        return PHASES[0]
