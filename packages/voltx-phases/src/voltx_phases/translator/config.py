"""Configs of phases 1.1 (+1.3) and 1.2 with their ``tiny`` and ``full`` profiles.

Torch-free on purpose: the plugin module imports this to declare the phases, and planning a
pipeline must not import torch. Every field can be overridden from ``voltx.toml`` or the command
line, e.g. ``voltx run 1.1 --set 1.1.epochs=3 --set 1.1.clean_role_tokens=false``.

``full`` is the original's numbers (`docs/phases.md`, 1.1 and 1.2); ``tiny`` is its smoke size
(vocab 512, embed 32) but keeps hidden 256 and 16 slots, so tiny files have the same format as full
ones.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class EncoderPhaseConfig:
    """Phase 1.1 (+1.3): the BPE tokenizer, then the CNN encoder with InfoNCE and role losses."""

    # Tokenizer (`docs/phases.md`, 1.1). The encoder's embedding has `vocab_size` rows even when the
    # corpus supports fewer merges, so the weights file always has the original's shape.
    vocab_size: int = 32768
    min_frequency: int = 2
    # Corpus documents (those of 50 to 50,000 bytes) the tokenizer is trained on.
    tokenizer_max_files: int = 50_000

    # Encoder shape (`docs/formats.md`, code encoder); hidden 256 and 16 roles are fixed by the
    # frame format.
    embed_dim: int = 128
    max_seq_len: int = 512

    # Training pairs: (function, docstring) from the corpus plus (query, solution) of the
    # problems; 0 means no cap. The original trained on 100K CodeSearchNet records.
    max_pairs: int = 100_000
    valid_fraction: float = 0.1

    # Optimisation (`docs/phases.md`, 1.1): one AdamW and one warmup+cosine schedule for the
    # whole run.
    batch_size: int = 128
    epochs: int = 10
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.01

    # Losses (`docs/phases.md`, 1.1): 0.8 InfoNCE + 0.2 role NLL, as the original's code (its
    # docs say 0.3/0.7, which the code never used).
    tau: float = 0.07
    contrastive_weight: float = 0.8
    role_weight: float = 0.2
    # True labels roles on decoded token text (leading space stripped, newlines kept); False
    # reproduces the original, which compared `Ġdef` with `def` so almost no label fired.
    clean_role_tokens: bool = True

    # Validation: InfoNCE on up to this many consecutive batches of the valid split, per epoch.
    valid_batches: int = 50
    log_every_steps: int = 50
    checkpoint_every_steps: int = 1000
    seed: int = 42
    device: str = "auto"
    # CPU threads for torch; 0 keeps torch's default. Tiny uses 1, the one core it asks for:
    # its convolutions are too small to gain from a second thread, and on a shared machine
    # spinning OpenMP threads made each step several times slower.
    threads: int = 0


@attrs.frozen
class DecoderPhaseConfig:
    """Phase 1.2: the autoregressive decoder over frozen encoder features."""

    # Decoder shape (`docs/formats.md`, code decoder); vocab comes from the encoder file, model
    # dim is 256.
    embed_dim: int = 128
    ffn_dim: int = 1024
    # Longest target, and the rows of the learned position table.
    max_len: int = 256

    # Code samples: the code side of phase 1.1's pairs, split the same way; 0 means no cap.
    max_samples: int = 100_000
    valid_fraction: float = 0.1
    # End each target with <eos> so greedy generation learns where to stop (the original never
    # inserted <eos> and generated a fixed 128 tokens).
    append_eos: bool = True
    # False is the original: cross-entropy and accuracy over every position, padding included,
    # and cross-attention over padded context. True ignores padding in all three.
    mask_padding: bool = False
    # What the decoder reads while it trains (docs/phases.md, 1.2): "slots", the 16 slot vectors
    # of the code's frame, which is what it reads at inference; "tokens", the encoder's
    # per-token features, the original's choice, which left training and inference mismatched.
    context: str = attrs.field(default="slots", validator=attrs.validators.in_(("slots", "tokens")))

    # Optimisation (`docs/phases.md`, 1.2): AdamW, warmup then cosine to 1% over the whole run.
    batch_size: int = 64
    epochs: int = 10
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.01

    valid_batches: int = 50
    log_every_steps: int = 50
    checkpoint_every_steps: int = 1000
    seed: int = 42
    device: str = "auto"
    # CPU threads for torch; 0 keeps torch's default. Tiny uses 1, the one core it asks for:
    # its convolutions are too small to gain from a second thread, and on a shared machine
    # spinning OpenMP threads made each step several times slower.
    threads: int = 0


ENCODER_PROFILES = {
    "tiny": EncoderPhaseConfig(
        vocab_size=512,
        tokenizer_max_files=200,
        embed_dim=32,
        max_seq_len=64,
        max_pairs=200,
        batch_size=8,
        epochs=3,
        # A short run needs a short warmup and a larger step for the losses to move visibly.
        lr=2e-3,
        warmup_steps=4,
        valid_batches=4,
        log_every_steps=2,
        checkpoint_every_steps=10,
        threads=1,
    ),
    "full": EncoderPhaseConfig(),
}

DECODER_PROFILES = {
    "tiny": DecoderPhaseConfig(
        embed_dim=32,
        ffn_dim=128,
        max_len=64,
        max_samples=200,
        batch_size=8,
        epochs=3,
        # Zero-initialised embeddings (the original's) learn slowly; a short run needs a big step.
        lr=5e-3,
        warmup_steps=2,
        valid_batches=4,
        log_every_steps=2,
        checkpoint_every_steps=10,
        threads=1,
    ),
    "full": DecoderPhaseConfig(),
}
