"""Model files: the checks of their tensor names and shapes, and loaders that build the model a
file describes. Files written by the original implementation load unchanged.

    voltx artifacts add code_encoder code_encoder.safetensors    # runs check_encoder_file
    voltx artifacts add scaled_vfn_init scaled_vfn.safetensors   # runs check_scaled_vfn_file

    from voltx_phases.models.loading import check_encoder_file, load_encoder
    shape = check_encoder_file("code_encoder.safetensors")   # or the folder holding it
    encoder = load_encoder("code_encoder.safetensors")

Each `check_*_file` takes a file or a folder holding it and raises `WeightsError` (a
`ValueError`) in one line naming the file, the tensor, and the shape expected and found. The
sizes are read from the file itself (vocab and embed width from the embedding table; for the
decoder the position table's length and the FFN width; for the ScaledVFN the hidden and slot
widths from ``entry.weight``, the time frequencies from ``time_proj.weight`` and the block count
from the ``block_{i}.fc1.weight`` tensors), then every tensor is checked against the layout those
sizes imply (tensor names and shapes in `docs/formats.md`). Only the safetensors header is read,
so checking a 200 MB file is instant.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from voltx_phases._common.artifact_files import locate
from voltx_phases._common.weights import (
    WeightsError,
    compare_shapes,
    expected_shapes,
    load_weights,
    sized,
    tensor_shapes,
)
from voltx_phases.models.decoder import CodeDecoder, DecoderShape
from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.encoder import CodeEncoder, EncoderShape
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape
from voltx_phases.models.slot_attention import SlotAttention

ENCODER_FILE = "code_encoder.safetensors"
DECODER_FILE = "code_decoder.safetensors"
SCALED_VFN_FILE = "scaled_vfn.safetensors"
SLOT_ATTENTION_FILE = "slot_attention.safetensors"
CONTROLLER_FILE = "diffusion_controller.safetensors"
BIAS_FILE = "code_attention_bias.safetensors"


def encoder_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> EncoderShape:
    """The EncoderShape implied by `embed.weight` [vocab, embed_dim]."""
    vocab_size, embed_dim = sized(shapes, "embed.weight", 2, file)
    return EncoderShape(vocab_size=vocab_size, embed_dim=embed_dim)


def decoder_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> DecoderShape:
    """The DecoderShape implied by `token_embed`, `pos_encoding` and `ffn1.weight`."""
    vocab_size, embed_dim = sized(shapes, "token_embed", 2, file)
    max_len, model_dim = sized(shapes, "pos_encoding", 2, file)
    ffn_dim = sized(shapes, "ffn1.weight", 2, file)[0]
    return DecoderShape(vocab_size, embed_dim, model_dim, ffn_dim, max_len)


def check_encoder_file(path: Path | str) -> EncoderShape:
    """Check an encoder weights file (names and shapes); returns its shape."""
    file = locate(path, ENCODER_FILE)
    shapes = tensor_shapes(file)
    shape = encoder_shape(shapes, file)
    compare_shapes(shapes, expected_shapes(CodeEncoder, shape), file)
    return shape


def check_decoder_file(path: Path | str) -> DecoderShape:
    """Check a decoder weights file (names and shapes); returns its shape."""
    file = locate(path, DECODER_FILE)
    shapes = tensor_shapes(file)
    shape = decoder_shape(shapes, file)
    compare_shapes(shapes, expected_shapes(CodeDecoder, shape), file)
    return shape


def load_encoder(path: Path | str, device: torch.device | str = "cpu") -> CodeEncoder:
    """A CodeEncoder of the file's shape with its weights, on `device`."""
    shape = check_encoder_file(path)
    encoder = CodeEncoder(shape)
    load_weights(encoder, locate(path, ENCODER_FILE))
    return encoder.to(device)


def load_decoder(path: Path | str, device: torch.device | str = "cpu") -> CodeDecoder:
    """A CodeDecoder of the file's shape with its weights, on `device`."""
    shape = check_decoder_file(path)
    decoder = CodeDecoder(shape)
    load_weights(decoder, locate(path, DECODER_FILE))
    return decoder.to(device)


def scaled_vfn_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> VfnShape:
    """The VfnShape implied by ``entry.weight`` [H, 256], ``time_proj.weight`` [H, 2F] and the
    number of ``block_{i}.fc1.weight`` tensors."""
    hidden_dim, slot_dim = sized(shapes, "entry.weight", 2, file)
    time_inputs = sized(shapes, "time_proj.weight", 2, file)[1]
    if time_inputs % 2:
        raise WeightsError(
            f"{file}: tensor 'time_proj.weight' has {time_inputs} inputs, expected an even "
            "number (sin and cos of each frequency)"
        )
    blocks = sum(1 for name in shapes if name.startswith("block_") and name.endswith(".fc1.weight"))
    return VfnShape(
        hidden_dim=hidden_dim, num_blocks=blocks, time_freqs=time_inputs // 2, slot_dim=slot_dim
    )


def check_scaled_vfn_file(path: Path | str) -> VfnShape:
    """Check a ScaledVFN weights file (names and shapes); returns its shape."""
    file = locate(path, SCALED_VFN_FILE)
    shapes = tensor_shapes(file)
    shape = scaled_vfn_shape(shapes, file)
    compare_shapes(shapes, expected_shapes(ScaledVFN, shape), file)
    return shape


def load_scaled_vfn(path: Path | str, device: torch.device | str = "cpu") -> ScaledVFN:
    """A ScaledVFN of the file's shape with its weights, on `device`."""
    shape = check_scaled_vfn_file(path)
    vfn = ScaledVFN(shape)
    load_weights(vfn, locate(path, SCALED_VFN_FILE))
    return vfn.to(device)


def load_slot_attention(path: Path | str, device: torch.device | str = "cpu") -> SlotAttention:
    """Slot attention (with the bias saved beside its weights), on `device`."""
    file = locate(path, SLOT_ATTENTION_FILE)
    slot_dim = sized(tensor_shapes(file), "wq.weight", 2, file)[1]
    attention = SlotAttention(dim=slot_dim)
    load_weights(attention, file)
    return attention.to(device)


def load_diffusion_controller(
    path: Path | str, device: torch.device | str = "cpu"
) -> DiffusionController:
    """The diffusion controller, its hidden width read from ``fc1.weight`` [hidden, 256 + 2]."""
    file = locate(path, CONTROLLER_FILE)
    hidden, inputs = sized(tensor_shapes(file), "fc1.weight", 2, file)
    controller = DiffusionController(dim=inputs - 2, hidden=hidden)
    load_weights(controller, file)
    return controller.to(device)


def load_attention_bias(path: Path | str) -> torch.Tensor:
    """Phase 0.4's [16, 16] bias."""
    file = locate(path, BIAS_FILE)
    tensors = load_file(str(file))
    if "bias" not in tensors or tuple(tensors["bias"].shape) != (16, 16):
        raise WeightsError(f"{file}: expected one tensor 'bias' of shape [16, 16]")
    return tensors["bias"].float()
