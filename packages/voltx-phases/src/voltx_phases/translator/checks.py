"""Checks and loaders for the translator's files, including files written by the original.

    voltx artifacts add code_encoder path/to/code_encoder.safetensors   # runs check_encoder_file

    from voltx_phases.translator.checks import check_encoder_file, load_encoder
    shape = check_encoder_file("code_encoder.safetensors")   # or the folder holding it
    encoder = load_encoder("code_encoder.safetensors")

Each `check_*_file` takes a file or a folder holding it and raises `ValueError` with the file,
the tensor, and the shape expected and found. The encoder's and decoder's sizes are read from the
file itself (vocab and embed width from the embedding table, and for the decoder the position
table's length and the FFN width), then every other tensor is checked against the shapes those
sizes imply. Only the safetensors header is read, so checking a 20 MB file is instant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tokenizers import Tokenizer
from torch import nn

from voltx_phases._common.weights import WeightsError, load_weights
from voltx_phases.translator.decoder import CodeDecoder, DecoderShape
from voltx_phases.translator.encoder import CodeEncoder, EncoderShape
from voltx_phases.translator.tokenizer_training import SPECIAL_TOKENS

TOKENIZER_FILE = "code_tokenizer.json"
ENCODER_FILE = "code_encoder.safetensors"
DECODER_FILE = "code_decoder.safetensors"
_FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


def locate(path: Path | str, file_name: str) -> Path:
    """`path` itself when it is a file; else `file_name` in the folder, or its one file with the
    same suffix."""
    path = Path(path)
    if path.is_dir():
        if (path / file_name).is_file():
            return path / file_name
        suffix = Path(file_name).suffix
        matches = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
        if len(matches) == 1:
            return matches[0]
        raise ValueError(f"{path}: expected {file_name} (or one *{suffix} file) in the folder")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path


def check_tokenizer_file(path: Path | str) -> int:
    """Check a tokenizer JSON file; returns its vocabulary size."""
    file = locate(path, TOKENIZER_FILE)
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise ValueError(f"{file}: not a tokenizers JSON file: {exc}") from exc
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual = tokenizer.token_to_id(token)
        if actual != expected_id:
            raise ValueError(
                f"{file}: special token {token} has id {actual}, expected {expected_id}"
            )
    return int(tokenizer.get_vocab_size(with_added_tokens=True))


def tensor_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, from the header only; non-float tensors are rejected."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                tensor_slice = handle.get_slice(name)
                dtype = tensor_slice.get_dtype()
                if dtype not in _FLOAT_DTYPES:
                    raise WeightsError(f"{file}: tensor {name!r} has dtype {dtype}, expected F32")
                shapes[name] = tuple(tensor_slice.get_shape())
    except WeightsError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise WeightsError(f"{file}: not a readable safetensors file: {exc}") from exc
    return shapes


def _sized(
    shapes: Mapping[str, tuple[int, ...]], name: str, rank: int, file: Path
) -> tuple[int, ...]:
    if name not in shapes:
        raise WeightsError(f"{file}: missing tensor {name!r}")
    shape = shapes[name]
    if len(shape) != rank:
        raise WeightsError(f"{file}: tensor {name!r} has shape {list(shape)}, expected rank {rank}")
    return shape


def _expected_shapes(
    factory: Callable[[Any], nn.Module], shape: object
) -> dict[str, tuple[int, ...]]:
    # Built on the meta device: shapes without allocating or initialising 5M parameters.
    with torch.device("meta"):
        module = factory(shape)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _compare(
    shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], file: Path
) -> None:
    for name, wanted in expected.items():
        if name not in shapes:
            raise WeightsError(f"{file}: missing tensor {name!r} (shape {list(wanted)})")
        if shapes[name] != wanted:
            raise WeightsError(
                f"{file}: tensor {name!r} has shape {list(shapes[name])}, expected {list(wanted)}"
            )
    unexpected = sorted(set(shapes) - set(expected))
    if unexpected:
        raise WeightsError(f"{file}: unexpected tensor {unexpected[0]!r}")


def encoder_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> EncoderShape:
    """The EncoderShape implied by `embed.weight` [vocab, embed_dim]."""
    vocab_size, embed_dim = _sized(shapes, "embed.weight", 2, file)
    return EncoderShape(vocab_size=vocab_size, embed_dim=embed_dim)


def decoder_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> DecoderShape:
    """The DecoderShape implied by `token_embed`, `pos_encoding` and `ffn1.weight`."""
    vocab_size, embed_dim = _sized(shapes, "token_embed", 2, file)
    max_len, model_dim = _sized(shapes, "pos_encoding", 2, file)
    ffn_dim = _sized(shapes, "ffn1.weight", 2, file)[0]
    return DecoderShape(vocab_size, embed_dim, model_dim, ffn_dim, max_len)


def check_encoder_file(path: Path | str) -> EncoderShape:
    """Check an encoder weights file (names and shapes); returns its shape."""
    file = locate(path, ENCODER_FILE)
    shapes = tensor_shapes(file)
    shape = encoder_shape(shapes, file)
    _compare(shapes, _expected_shapes(CodeEncoder, shape), file)
    return shape


def check_decoder_file(path: Path | str) -> DecoderShape:
    """Check a decoder weights file (names and shapes); returns its shape."""
    file = locate(path, DECODER_FILE)
    shapes = tensor_shapes(file)
    shape = decoder_shape(shapes, file)
    _compare(shapes, _expected_shapes(CodeDecoder, shape), file)
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
