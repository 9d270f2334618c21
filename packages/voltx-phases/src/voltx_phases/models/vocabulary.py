"""The special token ids every model and the tokenizer agree on.

`<pad> <unk> <bos> <eos>` sit at ids 0-3, as in the original's tokenizer. Id 0 (`<pad>`) is
both padding and the decoder's BOS (the original's convention, which its checkpoints were
trained with).
"""

from __future__ import annotations

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
