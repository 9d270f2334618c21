"""docs/formats.md's model tables are the truth the code and the original's files must meet.

The tables are parsed (`_layouts`), not copied: a tensor renamed or reshaped in the code, or in
the document, fails here. Full-size models are built on the meta device, which allocates
nothing, so comparing 51.7M-parameter layouts is instant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _layouts import DocumentedModel, documented_models, resized  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from voltx_phases._common.weights import load_weights  # noqa: E402
from voltx_phases._common.work_estimates import (  # noqa: E402
    decoder_parameters,
    encoder_parameters,
    vfn_parameters,
)
from voltx_phases.models.decoder import CodeDecoder  # noqa: E402
from voltx_phases.models.diffusion_controller import DiffusionController  # noqa: E402
from voltx_phases.models.encoder import CodeEncoder  # noqa: E402
from voltx_phases.models.loading import load_decoder, load_encoder  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape, shape_from_tensors  # noqa: E402
from voltx_phases.models.slot_attention import SlotAttention  # noqa: E402
from voltx_phases.soft_core.code_attention_bias import code_attention_bias  # noqa: E402

# The full-size model behind each documented artifact (the defaults are the original's sizes).
FULL_SIZE: dict[str, Callable[[], torch.nn.Module]] = {
    "code_encoder": CodeEncoder,
    "code_decoder": CodeDecoder,
    "scaled_vfn": ScaledVFN,
    "slot_attention": SlotAttention,
    "diffusion_controller": DiffusionController,
}
# The full-size parameter counts of the original (issue 9; its architecture notes agree).
ORIGINAL_PARAMETERS = {
    "code_encoder": 5_149_712,
    "code_decoder": 5_246_848,
    "scaled_vfn": 51_685_632,
}
_DTYPES = {"F32": torch.float32, "U8": torch.uint8}


@pytest.fixture(scope="module")
def documented() -> dict[str, DocumentedModel]:
    return documented_models()


def _on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.device("meta"):
        return build()


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tensors_from_docs(model: DocumentedModel, seed: int = 0) -> dict[str, torch.Tensor]:
    """A weights file as the original would write it, from nothing but the document."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=generator).to(_DTYPES[model.dtypes[name]])
        for name, shape in model.shapes.items()
    }


def test_every_model_the_phases_write_is_documented(
    documented: dict[str, DocumentedModel],
) -> None:
    assert set(documented) == {*FULL_SIZE, "code_attention_bias"}
    for artifact, model in documented.items():
        assert model.file_name == f"{artifact}.safetensors"


@pytest.mark.parametrize("artifact", sorted(FULL_SIZE))
def test_documented_layout_is_the_full_size_models_state_dict(
    documented: dict[str, DocumentedModel], artifact: str
) -> None:
    model = _on_meta(FULL_SIZE[artifact])
    actual = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    expected = documented[artifact].shapes
    assert sorted(set(expected) - set(actual)) == [], "documented but not in the model"
    assert sorted(set(actual) - set(expected)) == [], "in the model but not documented"
    assert actual == dict(expected)
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == _DTYPES[documented[artifact].dtypes[name]], name
    assert _parameters(model) == documented[artifact].parameters


def test_documented_code_attention_bias_is_what_phase_0_4_writes(
    documented: dict[str, DocumentedModel],
) -> None:
    bias = code_attention_bias()
    model = documented["code_attention_bias"]
    assert model.shapes == {"bias": bias.shape}
    assert model.dtypes == {"bias": "F32"} and str(bias.dtype) == "float32"
    assert model.parameters == 0


@pytest.mark.parametrize("artifact", sorted(ORIGINAL_PARAMETERS))
def test_full_size_parameter_counts_are_the_originals(
    documented: dict[str, DocumentedModel], artifact: str
) -> None:
    counted = _parameters(_on_meta(FULL_SIZE[artifact]))
    assert counted == ORIGINAL_PARAMETERS[artifact]
    assert documented[artifact].parameters == ORIGINAL_PARAMETERS[artifact]


def test_parameter_formulas_of_the_plans_match_the_models() -> None:
    # Plans count work from these torch-free formulas (voltx_phases._common.work_estimates).
    assert encoder_parameters(32768, 128) == _parameters(_on_meta(CodeEncoder))
    assert decoder_parameters(32768, 128, 1024, 256) == _parameters(_on_meta(CodeDecoder))
    assert vfn_parameters(2048, 6, 64) == _parameters(_on_meta(ScaledVFN))
    tiny = VfnShape(hidden_dim=64, num_blocks=1, time_freqs=4)
    assert vfn_parameters(64, 1, 4) == _parameters(_on_meta(lambda: ScaledVFN(tiny))) == 42_112


def test_full_size_scaled_vfn_file_built_from_the_docs_loads(
    documented: dict[str, DocumentedModel], tmp_path: Path
) -> None:
    tensors = _tensors_from_docs(documented["scaled_vfn"])
    path = tmp_path / "scaled_vfn.safetensors"
    save_file(tensors, str(path))  # plain names, no metadata: as the original writes it
    del tensors
    # The route phase 2.1 takes for `scaled_vfn_init`: the shape read from the file, then a load
    # that checks every name and shape.
    from safetensors.torch import load_file

    loaded = load_file(str(path))
    shape = shape_from_tensors(loaded)
    assert shape == VfnShape()
    vfn = ScaledVFN(shape)
    load_weights(vfn, path)
    state = vfn.state_dict()
    for name in ("time_proj.weight", "block_5.fc2.weight", "exit.bias"):
        assert torch.equal(state[name], loaded[name]), name


@pytest.mark.parametrize(
    ("artifact", "load"), [("code_encoder", load_encoder), ("code_decoder", load_decoder)]
)
def test_full_size_translator_files_built_from_the_docs_load(
    documented: dict[str, DocumentedModel],
    tmp_path: Path,
    artifact: str,
    load: Callable[[Path], torch.nn.Module],
) -> None:
    tensors = _tensors_from_docs(documented[artifact], seed=1)
    path = tmp_path / f"{artifact}.safetensors"
    save_file(tensors, str(path))
    model = load(path)
    state = model.state_dict()
    for name, tensor in tensors.items():
        assert torch.equal(state[name], tensor), name


def test_a_tiny_layout_derived_from_the_docs_keeps_the_names(
    documented: dict[str, DocumentedModel],
) -> None:
    # How tests/phases/test_vfn_training.py builds its original-layout fixture at tiny size.
    shapes = resized(documented["scaled_vfn"].shapes, {2048: 64, 128: 8}, blocks=1)
    tiny = _on_meta(lambda: ScaledVFN(VfnShape(hidden_dim=64, num_blocks=1, time_freqs=4)))
    assert shapes == {name: tuple(t.shape) for name, t in tiny.state_dict().items()}
