"""The byte-level BPE code tokenizer (`docs/phases.md`, 1.1), trained exactly as the original.

    from voltx_phases.translator.tokenizer_training import corpus_texts, train_tokenizer
    tokenizer = train_tokenizer(corpus_texts(path, max_files=50_000), vocab_size=32768)
    tokenizer.save("code_tokenizer.json")

Settings: a `BPE` model with no unknown token, no dropout, no prefix or suffix; the GPT-2
`ByteLevel` pre-tokenizer (add_prefix_space, trim_offsets, regex); a `ByteLevel` decoder; no
normalizer and no post-processor; `<pad> <unk> <bos> <eos>` at ids 0-3. Token strings use the
ByteLevel glyphs (`Ġ` for a leading space, `Ċ` for a newline); files load with
`tokenizers.Tokenizer.from_file` unchanged. Training is deterministic for a given corpus order.

Downstream conventions, as the original's: id 0 (`<pad>`) is both padding and the decoder's
BOS; texts are encoded with ``add_special_tokens=False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from voltx_phases.datasets.schema import read_documents
from voltx_phases.models.vocabulary import SPECIAL_TOKENS

# The original skipped documents outside this many UTF-8 bytes.
MIN_DOCUMENT_BYTES = 50
MAX_DOCUMENT_BYTES = 50_000


def corpus_texts(corpus: Path, max_files: int) -> Iterator[str]:
    """Documents of a corpus JSONL file, in file order, of 50 to 50,000 bytes, at most
    `max_files` of them (the count is of documents kept, as the original's)."""
    kept = 0
    for document in read_documents(corpus):
        if kept >= max_files:
            return
        size = len(document.content.encode("utf-8"))
        if MIN_DOCUMENT_BYTES <= size <= MAX_DOCUMENT_BYTES:
            kept += 1
            yield document.content


def new_tokenizer() -> Tokenizer:
    """An untrained tokenizer with the original's model, pre-tokenizer and decoder."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=True, trim_offsets=True, use_regex=True
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train the BPE tokenizer on `texts`; specials take ids 0-3 in the order of SPECIAL_TOKENS.

    No initial alphabet is given, as in the original: the byte alphabet is whatever occurs in the
    corpus, and bytes it never saw are dropped when encoding.
    """
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer
