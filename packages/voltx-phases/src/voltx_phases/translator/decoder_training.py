"""Phase 1.2: the code decoder, trained over the frozen encoder's view of the code.

    voltx run 1.2                          # full profile: d 256, FFN 1024, 10 epochs
    voltx run 1.2 --profile tiny
    voltx run 1.2 --set 1.2.mask_padding=true
    python -c 'import voltx; voltx.run("1.2", profile="tiny")'

Inputs: ``code_tokenizer``, ``code_encoder`` (phase 1.1, or files written by the original),
``stack_python`` and ``code_training_combined``. Output: ``code_decoder/code_decoder.safetensors``
(`docs/formats.md`, code decoder: the original's tensor names).

Each sample is the code side of phase 1.1's pairs (same extraction, same split), tokenised and
truncated to `max_len`, then ended with ``<eos>`` when it fits (`append_eos`). As the original:

- the encoder is frozen and its output detached;
- the decoder's input is the target shifted right with id 0 as BOS;
- the loss is cross-entropy over every position, padding (id 0) included, unless
  `mask_padding` is set.

Unlike the original, the context is by default what the decoder reads at inference: the 16 slot
vectors of the code's frame (`context = "slots"`; empty slots masked). The original trained on
the per-token CNN features [B, L, 256] of the code and decoded from slot vectors, a mismatch its
own docs acknowledge; `context = "tokens"` keeps that, for comparison.

Metrics (``metrics.jsonl``): every `log_every_steps` steps ``loss``, ``token_accuracy``,
``lr``; after each epoch ``epoch``, ``train_loss``, ``train_token_accuracy``, ``valid_loss``,
``token_accuracy`` (valid, over real tokens) and ``token_accuracy_with_pads`` (valid, every
position: the original's definition, under which it reported 61.1%), and
``token_accuracy_from_slots`` (valid, over real tokens, read from the slot vectors whatever the
training context: how well the decoder does at inference). A rerun after an
interruption resumes from the latest checkpoint.
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
from voltx_phases.models.decoder import DECODER_BOS_ID, CodeDecoder, DecoderShape
from voltx_phases.models.encoder import CodeEncoder, encode_frames, slot_context_mask
from voltx_phases.models.loading import DECODER_FILE, check_decoder_file, load_encoder
from voltx_phases.models.vocabulary import EOS_ID, PAD_ID
from voltx_phases.translator.checks import check_tokenizer_file
from voltx_phases.translator.config import DecoderPhaseConfig
from voltx_phases.translator.pairs import encode_texts, load_pairs, split_pairs


@attrs.frozen
class CodeSamples:
    """Targets (code ids, then <eos> when it fits) and how many of their ids are code."""

    targets: list[torch.Tensor]
    code_lengths: list[int]

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: Sequence[int], device: torch.device) -> tuple[torch.Tensor, ...]:
        """target [B, L] padded with 0, decoder input [B, L] (BOS 0 then target[:-1]), and
        the code lengths [B] that delimit the encoder's context."""
        target = pad_sequence(
            [self.targets[i] for i in indices], batch_first=True, padding_value=PAD_ID
        ).to(device)
        bos = torch.full_like(target[:, :1], DECODER_BOS_ID)
        inputs = torch.cat([bos, target[:, :-1]], dim=1)
        lengths = torch.tensor([self.code_lengths[i] for i in indices], device=device)
        return target, inputs, lengths


def make_samples(
    codes: Sequence[str], tokenizer: Tokenizer, max_len: int, append_eos: bool
) -> CodeSamples:
    targets, lengths = [], []
    for ids in encode_texts(tokenizer, codes, max_len):
        if not ids:
            continue
        lengths.append(len(ids))
        # Only a complete text ends in <eos>: a truncated one must not teach the model to stop.
        if append_eos and len(ids) < max_len:
            ids = [*ids, EOS_ID]
        targets.append(torch.tensor(ids, dtype=torch.long))
    return CodeSamples(targets, lengths)


def decoder_context(
    encoder: CodeEncoder, target: torch.Tensor, lengths: torch.Tensor, context: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The decoder's context for the codes `target` [B, L] and its mask: the frames' 16 slot
    vectors (empty slots masked), or the per-token features (unmasked, as the original)."""
    with torch.no_grad():
        # `lengths` gives each code the encoding it has alone (the batch's padding never leaks
        # into a text's convolutions); the context is detached, the encoder frozen.
        if context == "slots":
            frames = encode_frames(encoder, target, lengths)
            return frames.vectors, slot_context_mask(frames.present)
        return encoder.features(target, lengths), None


def step_outputs(
    decoder: CodeDecoder,
    encoder: CodeEncoder,
    batch: tuple[torch.Tensor, ...],
    mask_padding: bool,
    context: str,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and accuracies of one batch."""
    target, inputs, lengths = batch
    features, context_mask = decoder_context(encoder, target, lengths, context)
    if context == "tokens" and mask_padding:
        positions = torch.arange(target.shape[1], device=target.device)
        context_mask = positions[None, :] < lengths[:, None]
    logits = decoder(inputs, features, context_mask)
    loss = F.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID if mask_padding else -100
    )
    with torch.no_grad():
        correct = logits.argmax(dim=-1) == target
        real = target != PAD_ID
        accuracy = {
            "token_accuracy": correct[real].float().mean(),
            "token_accuracy_with_pads": correct.float().mean(),
        }
    return loss, accuracy


@torch.no_grad()
def evaluate(
    decoder: CodeDecoder,
    encoder: CodeEncoder,
    data: CodeSamples,
    config: DecoderPhaseConfig,
    device: torch.device,
) -> dict[str, float]:
    """Loss and token accuracies on up to `valid_batches` consecutive batches of `data`."""
    decoder.eval()
    sums = {
        "valid_loss": 0.0,
        "token_accuracy": 0.0,
        "token_accuracy_with_pads": 0.0,
        "token_accuracy_from_slots": 0.0,
    }
    batches = 0
    for start in range(0, len(data), config.batch_size):
        if batches >= config.valid_batches:
            break
        batch = data.batch(range(start, min(start + config.batch_size, len(data))), device)
        loss, accuracy = step_outputs(decoder, encoder, batch, config.mask_padding, config.context)
        if config.context != "slots":
            _, from_slots = step_outputs(decoder, encoder, batch, config.mask_padding, "slots")
            accuracy["token_accuracy_from_slots"] = from_slots["token_accuracy"]
        else:
            accuracy["token_accuracy_from_slots"] = accuracy["token_accuracy"]
        sums["valid_loss"] += loss.item()
        for name, value in accuracy.items():
            sums[name] += value.item()
        batches += 1
    decoder.train()
    return {name: value / batches for name, value in sums.items()} if batches else {}


def run(ctx: PhaseContext) -> None:
    config: DecoderPhaseConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    seed_everything(config.seed)
    started = time.monotonic()

    # --- 1. frozen encoder, tokenizer, samples ---------------------------------------------
    tokenizer_file = ctx.input_file("code_tokenizer", "*.json")
    tokenizer_vocab = check_tokenizer_file(tokenizer_file)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    encoder = load_encoder(ctx.input_file("code_encoder", "*.safetensors"), device)
    encoder.eval().requires_grad_(False)
    if tokenizer_vocab > encoder.shape.vocab_size:
        raise PhaseError(
            ctx.phase_id,
            f"the tokenizer has {tokenizer_vocab} ids but the encoder only "
            f"{encoder.shape.vocab_size}: they were not trained together",
        )
    corpus = ctx.input_file("stack_python", "*.jsonl")
    problems = ctx.input_file("code_training_combined", "*.jsonl")
    train_pairs, valid_pairs = split_pairs(
        load_pairs(corpus, problems, config.max_samples), config.valid_fraction
    )
    train = make_samples(
        [p.code for p in train_pairs], tokenizer, config.max_len, config.append_eos
    )
    valid = make_samples(
        [p.code for p in valid_pairs], tokenizer, config.max_len, config.append_eos
    )
    steps_per_epoch = len(train) // config.batch_size
    if steps_per_epoch == 0:
        raise PhaseError(
            ctx.phase_id,
            f"{len(train)} training samples is less than one batch of {config.batch_size}",
        )
    total_steps = steps_per_epoch * config.epochs
    ctx.log.info("samples ready", train=len(train), valid=len(valid), steps=total_steps)

    # --- 2. model, optimizer, resume --------------------------------------------------------
    shape = DecoderShape(
        vocab_size=encoder.shape.vocab_size,
        embed_dim=config.embed_dim,
        model_dim=encoder.shape.hidden_dim,
        ffn_dim=config.ffn_dim,
        max_len=config.max_len,
    )
    decoder = CodeDecoder(shape).to(device)
    # candle's AdamW: decoupled decay on every tensor, norms and the embedding table included.
    optimizer = torch.optim.AdamW(
        decoder.parameters(),
        lr=config.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=config.weight_decay,
    )
    state = restore_latest(ctx.checkpoints, decoder, optimizer) or TrainerState()
    if state.step:
        ctx.log.info("resuming", step=state.step, epoch=state.epoch, batch=state.batch_in_epoch)

    # --- 3. training loop -------------------------------------------------------------------
    def batch_step(indices: Sequence[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = train.batch(indices, device)
        loss, accuracy = step_outputs(decoder, encoder, batch, config.mask_padding, config.context)
        return loss, {"token_accuracy": accuracy["token_accuracy"]}

    def end_epoch(epoch: int) -> None:
        ctx.metrics.log_metrics(
            state.step,
            epoch=epoch + 1,
            **epoch_means(state, "loss", "token_accuracy"),
            **evaluate(decoder, encoder, valid, config, device),
        )

    decoder.train()
    run_epochs(
        ctx,
        config,
        state,
        optimizer,
        len(train),
        batch_step=batch_step,
        log_row=lambda step, values: ctx.metrics.log_metrics(step, **values),
        save=lambda: save_checkpoint(ctx.checkpoints, decoder, optimizer, state),
        end_epoch=end_epoch,
    )

    # --- 4. a sample, then the output ---------------------------------------------------------
    sample = valid if len(valid) else train
    target, _, lengths = sample.batch([0], device)
    decoder.eval()
    context, context_mask = decoder_context(encoder, target, lengths, config.context)
    generated = decoder.generate(context, config.max_len, context_mask=context_mask)[0]
    ctx.log.info(
        "greedy sample",
        reference=tokenizer.decode(target[0, : lengths[0]].tolist()),
        generated=tokenizer.decode(generated),
    )
    weights = ctx.outputs["code_decoder"] / DECODER_FILE
    save_weights(decoder, weights, metadata={"format": "pt", "max_len": str(shape.max_len)})
    check_decoder_file(weights)
    ctx.log.info("decoder trained", steps=state.step, seconds=round(time.monotonic() - started, 2))
