"""Corpus files to R0 slot vectors (phase 0.3, `docs/phases.md`, 0.3), in one array.

    from voltx_phases.codebook.corpus_encoding import encode_corpus, load_tokenizer
    from voltx_phases.models.loading import load_encoder
    tokenizer = load_tokenizer("code_tokenizer.json")
    encoder = load_encoder("code_encoder.safetensors").eval()
    corpus = encode_corpus(read_documents(path), tokenizer, encoder, max_files=200, batch_size=32)
    corpus.vectors                                   # float32 [n, 256], unit rows

Each file of 50 to 50,000 UTF-8 bytes is tokenized (no special tokens, the first 512 ids) and
encoded into a frame; every present slot's R0 vector is one row. At full size that is 1.6M rows
(1.6 GB), so the rows go into ONE float32 array allocated up front for ``max_files * 16`` rows and
sliced at the end: no list of per-batch tensors, no concatenation that would need the memory
twice. Untouched pages of the allocation are never resident.

Speed: documents are tokenized a chunk at a time with the Rust `encode_batch_fast` (threaded),
then sorted by length so each batch pads to nearly its own length. `encode_frames` masks padding,
so a batch gives every file exactly the frame it would get alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from tokenizers import Tokenizer, pre_tokenizers

from voltx_phases.datasets.schema import Document
from voltx_phases.models.encoder import (
    NUM_SLOTS,
    SLOT_DIM,
    CodeEncoder,
    encode_frames,
)

# The original skipped corpus files outside this many UTF-8 bytes (`docs/phases.md`, 0.3).
MIN_DOCUMENT_BYTES = 50
MAX_DOCUMENT_BYTES = 50_000
MAX_TOKENS = 512
# The original collected only R0 vectors with |v|^2 above this.
MIN_SQUARED_NORM = 1e-10
# Documents tokenized together and then length-sorted into batches. A constant (not a multiple of
# batch_size) so the order of the rows does not depend on the batch size.
CHUNK_DOCUMENTS = 4096
# Characters of a long text tokenized before the rest is dropped; 8 per token is far more than
# code needs (about 3.5), so a text is tokenized twice only when it is mostly long tokens.
_PREFIX_CHARS_PER_TOKEN = 8


@attrs.frozen
class EncodingStats:
    files_read: int
    files_encoded: int  # counts toward max_files, as the original's
    skipped_size: int  # outside 50..50,000 bytes
    skipped_failed: int  # no tokens
    vectors: int
    tokens: int  # after truncation
    bytes: int  # UTF-8 bytes of the encoded files
    tokenize_seconds: float
    seconds: float


@attrs.frozen
class CorpusVectors:
    """The R0 vectors of a corpus: row i came from slot `slots[i]` of document `documents[i]`."""

    vectors: np.ndarray  # [n, 256] float32, a view of the preallocated array
    documents: np.ndarray  # [n] int64, 0-based index of the document in the input order
    slots: np.ndarray  # [n] int8
    stats: EncodingStats


def load_tokenizer(path: Path | str) -> Tokenizer:
    """A tokenizer file, with any padding or truncation it was saved with turned off: ids are
    `encode(text, add_special_tokens=False)`, and this module truncates to 512 itself."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def tokenize(
    tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int = MAX_TOKENS
) -> list[list[int]]:
    """`tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens]` for every text.

    A long text is cut before tokenizing when that provably leaves its first `max_tokens` ids
    unchanged (see `_cut_point`); a 50 KB file then costs about as much as a 4 KB one.
    """
    if tokenizer.padding is not None:
        raise ValueError("the tokenizer pads its output; load it with load_tokenizer()")
    limit = _PREFIX_CHARS_PER_TOKEN * max_tokens if _cuts_are_exact(tokenizer) else None
    cuts = [_cut_point(text, limit) for text in texts]
    heads = [text if cut is None else text[:cut] for text, cut in zip(texts, cuts, strict=True)]
    ids = [e.ids[:max_tokens] for e in tokenizer.encode_batch_fast(heads, add_special_tokens=False)]
    # A cut text that gave fewer ids than needed is mostly long tokens: tokenize all of it.
    short = [i for i, cut in enumerate(cuts) if cut is not None and len(ids[i]) < max_tokens]
    if short:
        full = tokenizer.encode_batch_fast([texts[i] for i in short], add_special_tokens=False)
        for i, encoding in zip(short, full, strict=True):
            ids[i] = encoding.ids[:max_tokens]
    return ids


def encode_corpus(
    documents: Iterable[Document],
    tokenizer: Tokenizer,
    encoder: CodeEncoder,
    *,
    max_files: int,
    batch_size: int,
    max_tokens: int = MAX_TOKENS,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusVectors:
    """R0 vectors of the first `max_files` documents that encode (50..50,000 bytes, >0 tokens).

    The model runs on the encoder's device under `torch.inference_mode`; `progress(files
    encoded, max_files)` is called after each chunk of documents.
    """
    started = time.perf_counter()
    device = next(encoder.parameters()).device
    capacity = max_files * NUM_SLOTS
    vectors = np.empty((capacity, SLOT_DIM), dtype=np.float32)
    origins = np.empty(capacity, dtype=np.int64)
    slots = np.empty(capacity, dtype=np.int8)
    rows = encoded = tokens = total_bytes = failed = 0
    tokenize_seconds = 0.0
    reader = _SizedDocuments(documents)
    while encoded < max_files:
        chunk = reader.take(min(CHUNK_DOCUMENTS, max_files - encoded))
        if not chunk:
            break
        tick = time.perf_counter()
        chunk_ids = tokenize(tokenizer, [text for _, text, _ in chunk], max_tokens)
        tokenize_seconds += time.perf_counter() - tick
        kept = [(c, ids) for c, ids in zip(chunk, chunk_ids, strict=True) if ids]
        failed += len(chunk) - len(kept)
        # Longest first: padding stays small, and the largest batch (peak memory) comes first.
        kept.sort(key=lambda item: len(item[1]), reverse=True)
        for start in range(0, len(kept), batch_size):
            batch = kept[start : start + batch_size]
            lengths = np.array([len(ids) for _, ids in batch], dtype=np.int64)
            padded = np.zeros((len(batch), int(lengths[0])), dtype=np.int64)
            for row, (_, ids) in enumerate(batch):
                padded[row, : len(ids)] = ids
            with torch.inference_mode():
                frames = encode_frames(
                    encoder,
                    torch.from_numpy(padded).to(device),
                    torch.from_numpy(lengths).to(device),
                )
                batch_vectors = frames.vectors.float().cpu().numpy()
                present = frames.present.cpu().numpy()
            present &= np.einsum("bsd,bsd->bs", batch_vectors, batch_vectors) > MIN_SQUARED_NORM
            which, slot = np.nonzero(present)  # row-major: each file's slots in role order
            count = which.shape[0]
            vectors[rows : rows + count] = batch_vectors[which, slot]
            origins[rows : rows + count] = np.array([c[0] for c, _ in batch])[which]
            slots[rows : rows + count] = slot
            rows += count
            tokens += int(lengths.sum())
            total_bytes += sum(c[2] for c, _ in batch)
        encoded += len(kept)
        if progress is not None:
            progress(encoded, max_files)
    stats = EncodingStats(
        files_read=reader.read,
        files_encoded=encoded,
        skipped_size=reader.skipped,
        skipped_failed=failed,
        vectors=rows,
        tokens=tokens,
        bytes=total_bytes,
        tokenize_seconds=tokenize_seconds,
        seconds=time.perf_counter() - started,
    )
    return CorpusVectors(vectors[:rows], origins[:rows], slots[:rows], stats)


class _SizedDocuments:
    """Documents of an allowed size, in order, with their input index and UTF-8 size."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self._iterator: Iterator[Document] = iter(documents)
        self.read = 0
        self.skipped = 0

    def take(self, count: int) -> list[tuple[int, str, int]]:
        chunk: list[tuple[int, str, int]] = []
        for document in self._iterator:
            index = self.read
            self.read += 1
            text = document.content
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            if MIN_DOCUMENT_BYTES <= size <= MAX_DOCUMENT_BYTES:
                chunk.append((index, text, size))
                if len(chunk) == count:
                    break
            else:
                self.skipped += 1
        return chunk


def _cuts_are_exact(tokenizer: Tokenizer) -> bool:
    """Whether cutting a text before a newline that follows a non-space character leaves every
    earlier token unchanged.

    True for the byte-level BPE of phase 1.1 (`docs/phases.md`, 1.1; no normalizer; GPT-2
    ByteLevel regex). That regex splits the text into pieces tokenized independently, and a piece
    ending in a non-space character cannot extend over a newline (letters, digits, punctuation and
    the contractions exclude whitespace; only whitespace runs look ahead). So the pieces before
    such a cut are the same with or without the rest of the text. Any other pre-tokenizer, a
    normalizer, or an added token holding whitespace: no cut.
    """
    pre = tokenizer.pre_tokenizer
    if not isinstance(pre, pre_tokenizers.ByteLevel) or not pre.use_regex:
        return False
    if tokenizer.normalizer is not None:
        return False
    added = tokenizer.get_added_tokens_decoder().values()
    return not any(any(ch.isspace() for ch in token.content) for token in added)


def _cut_point(text: str, limit: int | None) -> int | None:
    """The first newline at or after `limit` that follows a non-space character, or None."""
    if limit is None or len(text) <= limit:
        return None
    position = text.find("\n", limit)
    while position > 0:
        if not text[position - 1].isspace():
            return position
        position = text.find("\n", position + 1)
    return None
