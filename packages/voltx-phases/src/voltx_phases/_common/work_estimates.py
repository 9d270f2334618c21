"""How much arithmetic phases 1.1, 1.2 and 2.1 do, from their configs alone (torch-free).

A plan times a GPU run from this work (`voltx.planning.estimates`): FLOP over the reference
GPU's throughput at an assumed utilisation. The counts follow the usual rule for training: a
forward pass costs 2 FLOP per weight per input row it multiplies (one multiply, one add), the
backward pass twice that, so 6 x parameters per row trained and 2 x parameters per row only run
forward. What a "row" is, and what is assumed, is said beside each estimator; the models' shapes
and parameter formulas are those of docs/formats.md, the data sizes those of docs/phases.md.

These are estimates before the data exists: where the size of the data is unknown, the
original's datasets are assumed. A measured duration replaces the estimate once a phase has run.

    from voltx_phases._common.work_estimates import vfn_training_work
    vfn_training_work(VFN_PROFILES["full"]).flop       # 2.4e15
"""

from __future__ import annotations

from voltx import TrainingWork
from voltx_phases.soft_core.config import VfnTrainingConfig
from voltx_phases.translator.config import DecoderPhaseConfig, EncoderPhaseConfig

SLOT_DIM = 256  # every model's width at the frame: the 256-d slot vector
SLOTS = 16
ROLES = 16
# The BPE vocabulary the decoder's configs do not carry (it comes from the encoder's file).
FULL_VOCAB = 32768
_TRAIN = 6  # FLOP per weight per row, forward and backward
_FORWARD = 2  # FLOP per weight per row, forward only

# Problems in each dataset phase 2.1 may train on, as the original had them: HumanEval 164 and
# MBPP 257 make the combined 421; APPS train is 2,639 introductory, 2,000 interview and 361
# competition problems. Phase 0.2 writes these files; a plan runs before they exist.
ASSUMED_PROBLEMS = {
    "humaneval": 164,
    "mbpp": 257,
    "code_training_combined": 421,
    "apps_introductory_train": 2639,
    "apps_interview_train": 2000,
    "apps_competition_train": 361,
}


def encoder_parameters(vocab_size: int, embed_dim: int, hidden: int = SLOT_DIM) -> int:
    """Parameters of the CNN encoder: embedding, three convolutions (k 3, 5, 7), two heads."""
    embedding = vocab_size * embed_dim
    return embedding + encoder_dense_parameters(embed_dim, hidden)


def encoder_dense_parameters(embed_dim: int, hidden: int = SLOT_DIM) -> int:
    """The encoder's parameters that multiply every token (all but the embedding lookup)."""
    convolutions = (embed_dim * hidden * 3 + hidden) + (hidden * hidden * 5 + hidden)
    convolutions += hidden * hidden * 7 + hidden
    heads = (hidden * ROLES + ROLES) + (hidden * hidden + hidden)
    return convolutions + heads


def decoder_parameters(
    vocab_size: int, embed_dim: int, ffn_dim: int, max_len: int, dim: int = SLOT_DIM
) -> int:
    """Parameters of the one-layer decoder: tables, 3 norms, 6 attention projections, FFN."""
    linear = dim * dim + dim
    return (
        vocab_size * embed_dim  # token_embed, also the tied output matrix
        + (embed_dim * dim + dim)  # input_proj
        + max_len * dim  # pos_encoding
        + 3 * dim  # self_norm, cross_norm, ffn_norm
        + 6 * linear  # self_q/k/v, cross_q/k/v
        + (dim * ffn_dim + ffn_dim)
        + (ffn_dim * dim + dim)
        + (dim * embed_dim + embed_dim)  # output_proj
    )


def vfn_parameters(hidden: int, blocks: int, time_freqs: int, dim: int = SLOT_DIM) -> int:
    """Parameters of the ScaledVFN: time projection, entry, residual blocks, final norm, exit."""
    block = hidden + 2 * (hidden * hidden + hidden)
    return (
        (2 * time_freqs * hidden + hidden)
        + (dim * hidden + hidden)
        + blocks * block
        + hidden
        + (hidden * dim + dim)
    )


def _trained_samples(samples: int, valid_fraction: float, batch: int, epochs: int) -> int:
    """Samples the optimizer sees: full batches of the training split, every epoch."""
    valid = max(1, int(samples * valid_fraction)) if valid_fraction > 0 else 0
    return (samples - valid) // batch * batch * epochs


def _count(count: float) -> str:
    """51.7M, 42.1K or 176: short enough for a line of `voltx plan`."""
    if count >= 1e6:
        return f"{count / 1e6:.1f}M"
    if count >= 1e3:
        return f"{count / 1e3:.1f}K"
    return f"{count:.0f}"


def encoder_training_work(config: EncoderPhaseConfig) -> TrainingWork:
    """Phase 1.1: every pair encodes its code and its docstring, each padded to the cap.

    Rows are token positions. Padding to the batch's longest text is assumed to reach
    `max_seq_len` (128 functions nearly always hold one that long), so this is an upper bound.
    The embedding is a lookup and costs nothing; the tokenizer's training (CPU) is not counted.
    """
    pairs = _trained_samples(
        config.max_pairs, config.valid_fraction, config.batch_size, config.epochs
    )
    positions = pairs * 2 * config.max_seq_len
    dense = encoder_dense_parameters(config.embed_dim)
    return TrainingWork(
        flop=float(_TRAIN * dense * positions),
        basis=f"6 x {_count(dense)} dense parameters x {_count(positions)} token positions",
    )


def decoder_training_work(config: DecoderPhaseConfig) -> TrainingWork:
    """Phase 1.2: the decoder trains on every position; the frozen encoder runs forward only.

    Rows are token positions, each sample padded to `max_len`. Per position: the decoder's
    weights except the position table (the tied output matrix multiplies every position), its
    two attentions' score and mix products (L x 256 each), and the encoder's forward pass that
    makes the context. A vocabulary of 32,768 is assumed (the config takes it from 1.1's file).
    """
    samples = _trained_samples(
        config.max_samples, config.valid_fraction, config.batch_size, config.epochs
    )
    positions = samples * config.max_len
    weights = decoder_parameters(FULL_VOCAB, config.embed_dim, config.ffn_dim, config.max_len)
    weights -= config.max_len * SLOT_DIM  # the position table is added, not multiplied
    # Scores (q.k) and the weighted sum of values: 2 x L x 256 multiply-adds per position, for
    # the causal self-attention and for the cross-attention over the L context positions.
    attention = 2 * (2 * config.max_len * SLOT_DIM)
    encoder = encoder_dense_parameters(EncoderPhaseConfig().embed_dim)
    per_position = _TRAIN * (weights + attention) + _FORWARD * encoder
    return TrainingWork(
        flop=float(per_position * positions),
        basis=(
            f"6 x {_count(weights)} parameters (+ attention, + the encoder forward) "
            f"x {_count(positions)} token positions"
        ),
    )


def vfn_training_work(config: VfnTrainingConfig) -> TrainingWork:
    """Phase 2.1: flow matching plus the unrolled RAR loop, over the curriculum's stages.

    Rows are slot vectors: each problem gives 16 (the learned encoder fills nearly every slot)
    for the flow-matching loss, and 16 more per unrolled RAR iteration, all through the VFN
    forward and backward. Slot attention (197K) and the controller (4K) are small beside the
    VFN and left out, as is validation (forward only, on a tenth of the problems). Problem
    counts are the original's (`ASSUMED_PROBLEMS`).
    """
    params = vfn_parameters(config.hidden_dim, config.num_blocks, config.time_freqs)
    rows_per_problem = SLOTS * (1 + (config.rar_steps if config.rar_weight else 0))
    problems = 0
    for stage in config.stages:
        available = sum(ASSUMED_PROBLEMS.get(name, 0) for name in stage.datasets)
        problems += _trained_samples(
            available, config.validation_fraction, stage.batch_size, stage.epochs
        )
    rows = problems * rows_per_problem
    return TrainingWork(
        flop=float(_TRAIN * params * rows),
        basis=f"6 x {_count(params)} parameters x {_count(rows)} slot rows",
    )
