"""Configs of phases 1.1 (+1.3) and 1.2 with their ``tiny`` and ``full`` profiles.

Torch-free on purpose: the plugin module imports this to declare the phases, and planning a
pipeline must not import torch. Every field can be overridden from ``voltx.toml`` or the command
line, e.g. ``voltx run 1.1 --set 1.1.epochs=3 --set 1.1.clean_role_tokens=false``.

``full`` is the original's numbers (`docs/phases.md`, 1.1 and 1.2); ``tiny`` is its smoke size
(vocab 512, embed 32) but keeps hidden 256 and 16 slots, so tiny files have the same format as full
ones.
"""

from __future__ import annotations

from typing import Any

import attrs

from voltx_phases._common.bounds import (
    Validator,
    at_least,
    between,
    fraction,
    non_negative,
    positive,
    seed,
)


def _warmup_within_run(cap_field: str) -> Validator:
    """Cross-field: the warmup may not outlast the most steps the run can take.

    The exact step count depends on the data, but `cap_field` caps the examples, so
    ``epochs * ceil(cap / batch_size)`` bounds it; a warmup past that never reaches the peak lr
    and the cosine decay never starts.
    """

    def check(instance: Any, _attribute: attrs.Attribute[int], value: int) -> None:
        cap = getattr(instance, cap_field)
        if cap <= 0 or instance.batch_size <= 0 or instance.epochs <= 0:
            # No cap, or a bad batch size or epoch count, which their own checks report.
            return
        most = instance.epochs * -(-cap // instance.batch_size)
        if value > most:
            raise ValueError(
                f"must be at most the run's most steps (epochs x ceil({cap_field} / "
                f"batch_size) = {most}), got {value}"
            )

    return check


@attrs.frozen
class EncoderPhaseConfig:
    """Phase 1.1 (+1.3): the BPE tokenizer, then the CNN encoder with InfoNCE and role losses."""

    # Tokenizer (`docs/phases.md`, 1.1). The encoder's embedding has `vocab_size` rows even when the
    # corpus supports fewer merges, so the weights file always has the original's shape.
    # At least the 4 specials and the 256 bytes the byte-level alphabet may hold, or a corpus
    # could yield token ids past the embedding's rows.
    vocab_size: int = attrs.field(default=32768, validator=at_least(260))
    min_frequency: int = attrs.field(default=2, validator=at_least(1))
    # Corpus documents (those of 50 to 50,000 bytes) the tokenizer is trained on.
    tokenizer_max_files: int = attrs.field(default=50_000, validator=positive())

    # Encoder shape (`docs/formats.md`, code encoder); hidden 256 and 16 roles are fixed by the
    # frame format.
    embed_dim: int = attrs.field(default=128, validator=positive())
    max_seq_len: int = attrs.field(default=512, validator=positive())

    # Training pairs: (function, docstring) from the corpus plus (query, solution) of the
    # problems; 0 means no cap. The original trained on 100K CodeSearchNet records.
    max_pairs: int = attrs.field(default=100_000, validator=non_negative())
    valid_fraction: float = attrs.field(default=0.1, validator=between(0, 0.9))

    # Optimisation (`docs/phases.md`, 1.1): one AdamW and one warmup+cosine schedule for the
    # whole run.
    batch_size: int = attrs.field(default=128, validator=positive())
    epochs: int = attrs.field(default=10, validator=positive())
    lr: float = attrs.field(default=5e-4, validator=positive())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    warmup_steps: int = attrs.field(
        default=2000,
        validator=attrs.validators.and_(non_negative(), _warmup_within_run("max_pairs")),
    )
    min_lr_ratio: float = attrs.field(default=0.01, validator=fraction())

    # Losses (`docs/phases.md`, 1.1): 0.8 InfoNCE + 0.2 role NLL, as the original's code (its
    # docs say 0.3/0.7, which the code never used).
    tau: float = attrs.field(default=0.07, validator=positive())
    contrastive_weight: float = attrs.field(default=0.8, validator=non_negative())
    role_weight: float = attrs.field(default=0.2, validator=non_negative())
    # True labels roles on decoded token text (leading space stripped, newlines kept); False
    # reproduces the original, which compared `Ġdef` with `def` so almost no label fired.
    clean_role_tokens: bool = True

    # Validation: InfoNCE on up to this many consecutive batches of the valid split, per epoch.
    valid_batches: int = attrs.field(default=50, validator=positive())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=1000, validator=positive())
    seed: int = attrs.field(default=42, validator=seed())
    device: str = "auto"
    # CPU threads for torch; 0 keeps torch's default. Tiny uses 1, the one core it asks for:
    # its convolutions are too small to gain from a second thread, and on a shared machine
    # spinning OpenMP threads made each step several times slower.
    threads: int = attrs.field(default=0, validator=non_negative())


@attrs.frozen
class DecoderPhaseConfig:
    """Phase 1.2: the autoregressive decoder over frozen encoder features."""

    # Decoder shape (`docs/formats.md`, code decoder); vocab comes from the encoder file, model
    # dim is 256.
    embed_dim: int = attrs.field(default=128, validator=positive())
    ffn_dim: int = attrs.field(default=1024, validator=positive())
    # Longest target, and the rows of the learned position table.
    max_len: int = attrs.field(default=256, validator=positive())

    # Code samples: the code side of phase 1.1's pairs, split the same way; 0 means no cap.
    max_samples: int = attrs.field(default=100_000, validator=non_negative())
    valid_fraction: float = attrs.field(default=0.1, validator=between(0, 0.9))
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
    batch_size: int = attrs.field(default=64, validator=positive())
    epochs: int = attrs.field(default=10, validator=positive())
    lr: float = attrs.field(default=3e-4, validator=positive())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    warmup_steps: int = attrs.field(
        default=1000,
        validator=attrs.validators.and_(non_negative(), _warmup_within_run("max_samples")),
    )
    min_lr_ratio: float = attrs.field(default=0.01, validator=fraction())

    valid_batches: int = attrs.field(default=50, validator=positive())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=1000, validator=positive())
    seed: int = attrs.field(default=42, validator=seed())
    device: str = "auto"
    # CPU threads for torch; 0 keeps torch's default. Tiny uses 1, the one core it asks for:
    # its convolutions are too small to gain from a second thread, and on a shared machine
    # spinning OpenMP threads made each step several times slower.
    threads: int = attrs.field(default=0, validator=non_negative())


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
