"""Phase 1.1 (+1.3): the BPE code tokenizer, then the CNN code encoder.

    voltx run 1.1                          # full profile: vocab 32,768, 10 epochs
    voltx run 1.1 --profile tiny           # seconds on a laptop CPU
    voltx run 1.1 --set 1.1.role_weight=0.3 --set 1.1.clean_role_tokens=false
    python -c 'import voltx; voltx.run("1.1", profile="tiny")'

Inputs: ``stack_python`` (corpus JSONL) and ``code_training_combined`` (problem JSONL).
Outputs: ``code_tokenizer/code_tokenizer.json`` (`docs/formats.md`, tokenizer) and
``code_encoder/code_encoder.safetensors`` (`docs/formats.md`, code encoder: the original's tensor
names).

1. Train the byte-level BPE tokenizer on the corpus (`tokenizer_training`).
2. Build (code, text) pairs: corpus functions and their docstrings, problem solutions and their
   queries (`pairs`); split the first 90% of each source for training, as the original.
3. Train the encoder with 0.8 InfoNCE(code summary, text summary) + 0.2 role NLL, the role
   labels computed on cleaned token text (`role_labels`; the original's labels almost never
   fired). One AdamW and one warmup+cosine schedule span the whole run.

Metrics (``metrics.jsonl``): every `log_every_steps` steps ``loss``, ``contrastive``, ``role``,
``lr``; after each epoch ``epoch``, ``train_contrastive``, ``train_role``, ``valid_contrastive``,
``valid_role``. A rerun after an interruption resumes from the latest checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch.nn.utils.rnn import pad_sequence

from voltx import PhaseContext, PhaseError
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.epoch_loop import epoch_means, run_epochs
from voltx_phases._common.seeding import seed_everything
from voltx_phases._common.training_state import TrainerState, restore_latest, save_checkpoint
from voltx_phases._common.weights import save_weights
from voltx_phases.models.encoder import CodeEncoder, EncoderShape
from voltx_phases.models.loading import ENCODER_FILE, check_encoder_file
from voltx_phases.models.vocabulary import PAD_ID
from voltx_phases.translator.checks import TOKENIZER_FILE
from voltx_phases.translator.config import EncoderPhaseConfig
from voltx_phases.translator.pairs import Pair, encode_texts, load_pairs, split_pairs
from voltx_phases.translator.role_labels import OTHER, RoleLabeller
from voltx_phases.translator.tokenizer_training import corpus_texts, train_tokenizer


@attrs.frozen
class PairTensors:
    """Tokenised pairs: code ids, text ids and the code's role labels, one tensor per pair."""

    code: list[torch.Tensor]
    text: list[torch.Tensor]
    labels: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.code)

    def batch(
        self, indices: Sequence[int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded [B, L] tensors. Code and text pad to their own longest, with id 0, and the
        labels of padding are 15, as the original's; there is no mask (pads pass through)."""

        def pad(items: list[torch.Tensor], value: int) -> torch.Tensor:
            return pad_sequence(items, batch_first=True, padding_value=value).to(device)

        return (
            pad([self.code[i] for i in indices], PAD_ID),
            pad([self.text[i] for i in indices], PAD_ID),
            pad([self.labels[i] for i in indices], OTHER),
        )


def tokenize_pairs(
    pairs: Sequence[Pair], tokenizer: Tokenizer, labeller: RoleLabeller, max_len: int
) -> PairTensors:
    """Token ids and role labels of `pairs`; a pair whose code or text has no token is dropped."""
    code_ids = encode_texts(tokenizer, [p.code for p in pairs], max_len)
    text_ids = encode_texts(tokenizer, [p.text for p in pairs], max_len)
    code, text, labels = [], [], []
    for c, t in zip(code_ids, text_ids, strict=True):
        if c and t:
            code.append(torch.tensor(c, dtype=torch.long))
            text.append(torch.tensor(t, dtype=torch.long))
            labels.append(torch.tensor(labeller.labels(c), dtype=torch.long))
    return PairTensors(code, text, labels)


def info_nce(code: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE over unit vectors: ½[CE(S, arange) + CE(Sᵀ, arange)], S = C·Tᵀ/τ."""
    similarity = code @ text.T / tau
    targets = torch.arange(code.shape[0], device=code.device)
    return 0.5 * (F.cross_entropy(similarity, targets) + F.cross_entropy(similarity.T, targets))


def role_nll(role_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NLL of log(p + 1e-8) over every position, padding included, as the original."""
    return F.nll_loss(torch.log(role_probs + 1e-8).flatten(0, 1), labels.flatten())


@torch.no_grad()
def evaluate(
    model: CodeEncoder,
    data: PairTensors,
    config: EncoderPhaseConfig,
    device: torch.device,
) -> dict[str, float]:
    """InfoNCE and role loss on up to `valid_batches` consecutive batches of `data`.

    A final partial batch counts when it has two pairs or more (InfoNCE needs a negative), so
    a valid split smaller than one batch is still measured.
    """
    model.eval()
    contrastive, role, batches = 0.0, 0.0, 0
    for start in range(0, len(data), config.batch_size):
        indices = range(start, min(start + config.batch_size, len(data)))
        if len(indices) < 2 or batches >= config.valid_batches:
            break
        code, text, labels = data.batch(indices, device)
        code_out, text_out = model(code), model(text)
        contrastive += info_nce(code_out.summary, text_out.summary, config.tau).item()
        role += role_nll(code_out.role_probs, labels).item()
        batches += 1
    model.train()
    if not batches:
        return {}
    return {"valid_contrastive": contrastive / batches, "valid_role": role / batches}


def run(ctx: PhaseContext) -> None:
    config: EncoderPhaseConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    seed_everything(config.seed)
    corpus = ctx.input_file("stack_python", "*.jsonl")
    problems = ctx.input_file("code_training_combined", "*.jsonl")

    # --- 1. tokenizer (deterministic, so a resumed run rebuilds the same one) ---------------
    started = time.monotonic()
    tokenizer = train_tokenizer(
        corpus_texts(corpus, config.tokenizer_max_files), config.vocab_size, config.min_frequency
    )
    tokenizer.save(str(ctx.outputs["code_tokenizer"] / TOKENIZER_FILE), pretty=True)
    ctx.log.info(
        "tokenizer trained",
        vocab=tokenizer.get_vocab_size(),
        seconds=round(time.monotonic() - started, 2),
    )

    # --- 2. pairs, token ids, role labels ---------------------------------------------------
    train_pairs, valid_pairs = split_pairs(
        load_pairs(corpus, problems, config.max_pairs), config.valid_fraction
    )
    labeller = RoleLabeller.from_tokenizer(tokenizer, clean=config.clean_role_tokens)
    train = tokenize_pairs(train_pairs, tokenizer, labeller, config.max_seq_len)
    valid = tokenize_pairs(valid_pairs, tokenizer, labeller, config.max_seq_len)
    steps_per_epoch = len(train) // config.batch_size  # the remainder is dropped, as the original
    if steps_per_epoch == 0:
        raise PhaseError(
            ctx.phase_id,
            f"{len(train)} training pairs is less than one batch of {config.batch_size}; "
            "add documented functions to stack_python or lower batch_size",
        )
    total_steps = steps_per_epoch * config.epochs
    tokens = sum(len(labels) for labels in train.labels)
    labelled = sum(int((labels != OTHER).sum()) for labels in train.labels)
    # The share of code tokens with a role other than 15: near zero with the original's labels.
    coverage = labelled / max(1, tokens)
    ctx.log.info(
        "pairs ready",
        train=len(train),
        valid=len(valid),
        steps=total_steps,
        role_label_coverage=round(coverage, 4),
    )
    ctx.metrics.log_metrics(0, role_label_coverage=coverage)

    # --- 3. model, optimizer, resume --------------------------------------------------------
    shape = EncoderShape(
        vocab_size=config.vocab_size, embed_dim=config.embed_dim, max_seq_len=config.max_seq_len
    )
    model = CodeEncoder(shape).to(device)
    # candle's AdamW: decoupled decay on every tensor, biases and the embedding included.
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=config.weight_decay,
    )
    state = restore_latest(ctx.checkpoints, model, optimizer) or TrainerState()
    if state.step:
        ctx.log.info("resuming", step=state.step, epoch=state.epoch, batch=state.batch_in_epoch)

    # --- 4. training loop -------------------------------------------------------------------
    def batch_step(indices: Sequence[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        code, text, labels = train.batch(indices, device)
        code_out, text_out = model(code), model(text)
        contrastive = info_nce(code_out.summary, text_out.summary, config.tau)
        role = role_nll(code_out.role_probs, labels)
        loss = config.contrastive_weight * contrastive + config.role_weight * role
        return loss, {"contrastive": contrastive, "role": role}

    def end_epoch(epoch: int) -> None:
        ctx.metrics.log_metrics(
            state.step,
            epoch=epoch + 1,
            **epoch_means(state, "contrastive", "role"),
            **evaluate(model, valid, config, device),
        )

    model.train()
    run_epochs(
        ctx,
        config,
        state,
        optimizer,
        len(train),
        batch_step=batch_step,
        log_row=lambda step, values: ctx.metrics.log_metrics(step, **values),
        save=lambda: save_checkpoint(ctx.checkpoints, model, optimizer, state),
        end_epoch=end_epoch,
    )

    # --- 5. outputs ---------------------------------------------------------------------------
    weights = ctx.outputs["code_encoder"] / ENCODER_FILE
    save_weights(
        model,
        weights,
        metadata={
            "format": "pt",
            "vocab_size": str(shape.vocab_size),
            "embed_dim": str(shape.embed_dim),
            "clean_role_tokens": str(config.clean_role_tokens),
        },
    )
    check_encoder_file(weights)
    ctx.log.info("encoder trained", steps=state.step, seconds=round(time.monotonic() - started, 2))
