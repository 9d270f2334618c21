"""The check of tokenizer files, including those written by the original.

    voltx artifacts add code_tokenizer path/to/code_tokenizer.json   # runs check_tokenizer_file

The encoder's and decoder's weights files are checked by `voltx_phases.models.loading`, beside
the models every family loads.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from voltx_phases._common.artifact_files import locate
from voltx_phases.models.vocabulary import SPECIAL_TOKENS

TOKENIZER_FILE = "code_tokenizer.json"


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
