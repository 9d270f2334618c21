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

from collections.abc import Mapping
from pathlib import Path

import torch
from tokenizers import Tokenizer

from voltx_phases._common.weights import (
    compare_shapes,
    expected_shapes,
    load_weights,
    locate,
    sized,
    tensor_shapes,
)
from voltx_phases.models.decoder import CodeDecoder, DecoderShape
from voltx_phases.models.encoder import CodeEncoder, EncoderShape
from voltx_phases.models.vocabulary import SPECIAL_TOKENS

TOKENIZER_FILE = "code_tokenizer.json"
ENCODER_FILE = "code_encoder.safetensors"
DECODER_FILE = "code_decoder.safetensors"


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
