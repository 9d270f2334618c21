"""`voltx.generate` and `voltx generate` with a torch-free generator plugin: artifact resolution,
digests, errors, output. (The Volt X model itself: tests/phases/test_inference_store.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import voltx
from voltx.cli import main
from voltx.errors import PluginError
from voltx.generation import ConfidenceSignals, GeneratedSample, GenerationRequest, ProblemSamples
from voltx.store import ArtifactStore
from voltx.testing import registered_plugin

SIGNALS = ConfidenceSignals(
    min_slot_gamma=0.5,
    rar_iterations=7,
    rar_converged_slots=3,
    rar_active_slots=4,
    rar_max_final_delta=0.01,
    mean_token_logprob=-1.0,
)
seen: list[GenerationRequest] = []


def echo(request: GenerationRequest) -> list[ProblemSamples]:
    """Sample i of a prompt is the prompt and the first line of the `recipe` artifact."""
    seen.append(request)
    recipe = (request.artifacts["recipe"]).read_text().splitlines()[0]
    return [
        ProblemSamples(
            prompt=prompt,
            samples=tuple(
                GeneratedSample(f"# {recipe} {i}\n{prompt}", (5, 3), (-1.0, -1.0), True, SIGNALS)
                for i in range(request.n)
            ),
            rar_iterations=7,
            converged=(True,) * 16,
            final_deltas=(0.0,) * 16,
            slot_gamma=(0.5,) * 16,
        )
        for prompt in request.prompts
    ]


class EchoPlugin:
    @voltx.hookimpl
    def register_generators(self, register: Any) -> None:
        register(voltx.GeneratorSpec("echo", requires=("recipe",), entry=f"{__name__}:echo"))


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = str(tmp_path / "store")
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("first recipe\n")
    second.write_text("second recipe\n")
    artifacts = ArtifactStore.open(url)
    artifacts.add("recipe", first)
    artifacts.add("recipe", second)  # the latest: the ref now points here
    return url


def test_generate_runs_the_generator_on_the_latest_artifacts(store: str) -> None:
    with registered_plugin(EchoPlugin()):
        problems = voltx.generate(["a", "b"], n=3, store=store, generator="echo", seed=4)
    assert [p.prompt for p in problems] == ["a", "b"]
    assert problems[0].samples[2].code == "# second recipe 2\na"
    assert problems[0].samples[0].confidence == pytest.approx(0.5 * 2.718281828**-1)
    request = seen[-1]
    assert (request.n, request.seed, request.prompts) == (3, 4, ("a", "b"))
    assert request.digests["recipe"] == ArtifactStore.open(store).ref("recipe")


def test_a_digest_chooses_an_older_version(store: str, tmp_path: Path) -> None:
    first = tmp_path / "first.txt"
    first.write_text("first recipe\n")
    older = ArtifactStore.open(store).add("older_recipe", first).digest
    with registered_plugin(EchoPlugin()):
        problems = voltx.generate(
            "a", store=store, generator="echo", digests={"recipe": older[:10]}
        )
    assert problems[0].samples[0].code.startswith("# first recipe")
    assert seen[-1].digests == {"recipe": older}


def test_the_cli_prints_samples_and_json(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with registered_plugin(EchoPlugin()):
        assert main(["--store", store, "generate", "hello", "-n", "2", "--generator", "echo"]) == 0
        out = capsys.readouterr().out
        assert out.count("## sample ") == 2
        assert "confidence 0.184" in out
        assert "reasoning: 7 iterations, 3 of 4 filled slots converged" in out
        assert main(["--store", store, "generate", "hi", "--generator", "echo", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    assert data[0]["prompt"] == "hi"
    assert data[0]["samples"][0]["signals"]["rar_iterations"] == 7


def test_errors_are_one_line(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = str(tmp_path / "empty")
    with registered_plugin(EchoPlugin()):
        assert main(["--store", empty, "generate", "x", "--generator", "echo"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"voltx: error: generate (echo) needs artifact 'recipe', not in "
            f"{ArtifactStore.open(empty).url}: no registered phase makes it "
            "(voltx artifacts add recipe PATH)"
        ]
        assert main(["--store", store, "generate", "x", "--generator", "ecko"]) == 1
        assert "unknown generator 'ecko'" in capsys.readouterr().err
        assert main(["--store", store, "generate", "x", "--generator", "echo", "-n", "0"]) == 1
        assert "n must be >= 1" in capsys.readouterr().err
        assert main(["--store", store, "generate", "x", "--generator", "echo", "--top-p", "2"]) == 1
        assert "top_p must be in (0, 1]" in capsys.readouterr().err


def test_a_duplicate_generator_names_both_plugins() -> None:
    with (
        registered_plugin(EchoPlugin()),
        registered_plugin(EchoPlugin()),
        pytest.raises(PluginError, match="duplicate generator 'echo'"),
    ):
        voltx.generate("x", generator="echo")


def test_the_volt_x_generator_registers_without_torch() -> None:
    """voltx-phases registers `volt_x`; listing it (as `voltx generate` does before it has
    resolved every artifact) never imports torch."""
    code = (
        "import sys; from voltx.plugins import registry; spec = registry().generators['volt_x']; "
        "print(spec.entry, ','.join(spec.requires), 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "voltx_phases.generation:generate"
    assert "scaled_vfn" in out[1].split(",") and "code_decoder" in out[1].split(",")
    assert out[2] == "False"
