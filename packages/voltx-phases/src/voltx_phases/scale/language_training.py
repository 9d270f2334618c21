"""Phases 5.2a, 5.2b and 5.2c: a decoder per language, over the shared frozen encoder's frames.

    voltx run 5.2a                          # JavaScript, full profile
    voltx run 5.2a,5.2b,5.2c --profile tiny # the three lanes side by side
    voltx run 5.2c --set 5.2c.epochs=2
    python -c 'import voltx; voltx.run(["5.2a", "5.2b", "5.2c"], profile="tiny")'

Inputs: ``code_tokenizer`` and ``code_encoder`` (1.1, frozen), ``code_decoder`` (1.2, the
starting weights), ``vfn_500m`` (5.1's VFN folder) and ``code_attention_bias`` (0.4) for the
end-to-end pass rate, and, when present, ``raw_stack`` (The Stack; its files of the phase's
languages are read) and ``raw_language_problems`` (unified problem JSONL; `docs/formats.md`).
Outputs: ``code_decoder_<javascript|java|rust_go>/code_decoder.safetensors`` (1.2's format,
its own `max_len`) and ``<output>_report/`` (``metrics.json``, ``language_decoder.png``).

1. Problems per language: those of `raw_language_problems` in the language, else generated
   and validated in the sandbox (`language_problems.py`). A language with none is a one-line
   error. Every `held_out_every`-th problem is held out.
2. Training samples: the solutions of the other problems and the language's Stack files, each
   tokenised, truncated to `max_len` and ended with ``<eos>`` when whole (as 1.2's samples).
3. The decoder starts from `code_decoder` (the Python decoder; a longer `max_len` adds zero
   rows to the position table) and trains as 1.2 does on the frames of the code it must write:
   teacher-forced cross-entropy over the 16 slot vectors of the frozen encoder's frame.
4. After every epoch, per language: loss and token accuracy on the held-out solutions. At the
   end, each held-out solution's frame is decoded greedily and the code is run against the
   problem's tests in the sandbox's runner for the language: the pass rate; and the whole model
   (text, frame, the VFN's RAR, the new decoder) writes code for each held-out problem's text,
   run the same way: the end-to-end pass rate (`language_evaluation.py`).

The report holds no wall-clock figure and its rows survive a resume (they are checkpointed),
so a run killed at any step and rerun gives byte-identical outputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from tokenizers import Tokenizer

from voltx import PhaseContext, PhaseError
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.epoch_loop import epoch_means, run_epochs
from voltx_phases._common.seeding import seed_everything
from voltx_phases._common.training_state import (
    MODEL,
    TrainerState,
    read_training_state,
    write_training_state,
)
from voltx_phases._common.weights import save_weights
from voltx_phases.datasets.schema import DatasetLineError, Problem
from voltx_phases.datasets.stack_languages import read_stack_languages
from voltx_phases.models.decoder import CodeDecoder
from voltx_phases.models.encoder import CodeEncoder
from voltx_phases.models.inference import VoltModel
from voltx_phases.models.loading import (
    DECODER_FILE,
    check_decoder_file,
    load_decoder,
    load_encoder,
)
from voltx_phases.scale.language_config import LanguageDecoderConfig
from voltx_phases.scale.language_evaluation import (
    rar_models,
    run_end_to_end,
    run_held_out,
    verdicts,
)
from voltx_phases.scale.language_inputs import load_problems
from voltx_phases.scale.language_report import write_report
from voltx_phases.translator.checks import check_tokenizer_file
from voltx_phases.translator.decoder_training import (
    CodeSamples,
    make_samples,
    step_outputs,
)

REPORT_SUFFIX = "_report"


@attrs.frozen
class LanguageData:
    """One language's problems split for training and validation, and its Stack files."""

    language: str
    source: str  # "raw_language_problems" or "generated"
    train: tuple[Problem, ...]
    held_out: tuple[Problem, ...]
    corpus: tuple[str, ...]


def run(ctx: PhaseContext) -> None:
    config: LanguageDecoderConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    seed_everything(config.seed)
    started = time.monotonic()
    output = next(name for name in ctx.outputs if not name.endswith(REPORT_SUFFIX))

    # --- 1. frozen encoder, tokenizer, problems, samples -------------------------------------
    tokenizer = _tokenizer(ctx)
    encoder = load_encoder(ctx.input_file("code_encoder", "*.safetensors"), device)
    encoder.eval().requires_grad_(False)
    if tokenizer.get_vocab_size(with_added_tokens=True) > encoder.shape.vocab_size:
        raise PhaseError(ctx.phase_id, "the tokenizer has more ids than the encoder's vocabulary")
    data = _language_data(ctx, config)
    base_file = ctx.input_file("code_decoder", "*.safetensors")
    max_len = config.max_len or check_decoder_file(base_file).max_len
    codes = [code for item in data for code in (*(p.solution for p in item.train), *item.corpus)]
    train = make_samples(codes, tokenizer, max_len, config.append_eos)
    valid = {
        item.language: make_samples(
            [p.solution for p in item.held_out], tokenizer, max_len, config.append_eos
        )
        for item in data
    }
    steps_per_epoch = len(train) // config.batch_size
    if steps_per_epoch == 0:
        raise PhaseError(
            ctx.phase_id,
            f"{len(train)} training samples is less than one batch of {config.batch_size}; "
            "add problems or Stack files, or lower batch_size",
        )
    total_steps = steps_per_epoch * config.epochs
    ctx.log.info(
        "samples ready",
        train=len(train),
        held_out={item.language: len(item.held_out) for item in data},
        steps=total_steps,
    )

    # --- 2. decoder from code_decoder, optimizer, resume -------------------------------------
    decoder = _initial_decoder(base_file, max_len).to(device)
    optimizer = torch.optim.AdamW(
        decoder.parameters(),
        lr=config.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=config.weight_decay,
    )
    state, history = _restore(ctx, decoder, optimizer)
    if state.step:
        ctx.log.info("resuming", step=state.step, epoch=state.epoch, batch=state.batch_in_epoch)
    else:
        # Where the Python decoder starts on each language: the baseline the report compares to.
        row = {"step": 0, "epoch": 0, **_validate(decoder, encoder, valid, config, device)}
        _log(ctx, history, row)

    # --- 3. training loop (1.2's, over this phase's samples) ---------------------------------
    def batch_step(indices: Sequence[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = train.batch(indices, device)
        loss, accuracy = step_outputs(decoder, encoder, batch, config.mask_padding, "slots")
        return loss, {"token_accuracy": accuracy["token_accuracy"]}

    def end_epoch(epoch: int) -> None:
        row = {
            "step": state.step,
            "epoch": epoch + 1,
            **epoch_means(state, "loss"),
            **_validate(decoder, encoder, valid, config, device),
        }
        _log(ctx, history, row)

    decoder.train()
    run_epochs(
        ctx,
        config,
        state,
        optimizer,
        len(train),
        batch_step=batch_step,
        log_row=lambda step, values: _log(ctx, history, {"step": step, **values}),
        save=lambda: _save(ctx, decoder, optimizer, state, history),
        end_epoch=end_epoch,
    )

    # --- 4. pass rate in the sandbox, then the outputs ----------------------------------------
    decoder.eval()
    executions = {
        item.language: run_held_out(
            decoder, encoder, tokenizer, item.language, item.held_out, max_len, config, device
        )
        for item in data
    }
    model = VoltModel(tokenizer, encoder, decoder, rar_models(ctx, device), device)
    end_to_end = {
        item.language: run_end_to_end(model, item.language, item.held_out, config) for item in data
    }
    weights = ctx.outputs[output] / DECODER_FILE
    metadata = {"format": "pt", "max_len": str(max_len), "languages": ",".join(config.languages)}
    save_weights(decoder, weights, metadata=metadata)
    check_decoder_file(weights)
    summary = _summary(data, history, executions, end_to_end)
    write_report(ctx.outputs[output + REPORT_SUFFIX], ctx.phase_id, output, summary, history)
    ctx.log.info(
        "language decoder trained",
        steps=state.step,
        pass_rate={lang: facts["pass_rate"] for lang, facts in summary.items()},
        seconds=round(time.monotonic() - started, 2),
    )


def _tokenizer(ctx: PhaseContext) -> Tokenizer:
    path = ctx.input_file("code_tokenizer", "*.json")
    check_tokenizer_file(path)
    return Tokenizer.from_file(str(path))


def _language_data(ctx: PhaseContext, config: LanguageDecoderConfig) -> list[LanguageData]:
    problems = load_problems(ctx, config)
    corpora = _corpora(ctx, config)
    data = []
    for language in config.languages:
        found, source = problems[language]
        cut = config.held_out_every
        held_out = tuple(p for i, p in enumerate(found) if i % cut == cut - 1)
        if not held_out:
            raise PhaseError(
                ctx.phase_id,
                f"{source}: {len(found)} {language} problem(s), fewer than held_out_every "
                f"({cut}): none would be held out for validation",
            )
        train = tuple(p for i, p in enumerate(found) if i % cut != cut - 1)
        data.append(LanguageData(language, source, train, held_out, corpora[language]))
    return data


def _corpora(ctx: PhaseContext, config: LanguageDecoderConfig) -> dict[str, tuple[str, ...]]:
    """Each language's Stack files from `raw_stack`, one pass for all of them; none without."""
    if "raw_stack" not in ctx.inputs or not config.max_corpus_files:
        return {language: () for language in config.languages}
    try:
        found = read_stack_languages(
            ctx.inputs["raw_stack"], config.languages, max_files=config.max_corpus_files
        )
    except (DatasetLineError, FileNotFoundError) as exc:
        raise PhaseError(ctx.phase_id, f"raw_stack: {exc}") from exc
    return {language: tuple(d.content for d in found[language]) for language in config.languages}


def _initial_decoder(path: Path, max_len: int) -> CodeDecoder:
    """`code_decoder`'s weights in a decoder of `max_len` positions: the position table is cut,
    or extended with zero rows (1.2's initialisation of the table)."""
    base = load_decoder(path)
    decoder = CodeDecoder(attrs.evolve(base.shape, max_len=max_len))
    weights = base.state_dict()
    table = torch.zeros(max_len, base.shape.model_dim)
    rows = min(max_len, base.shape.max_len)
    table[:rows] = weights["pos_encoding"][:rows]
    weights["pos_encoding"] = table
    decoder.load_state_dict(weights)
    return decoder


@torch.no_grad()
def _validate(
    decoder: CodeDecoder,
    encoder: CodeEncoder,
    valid: dict[str, CodeSamples],
    config: LanguageDecoderConfig,
    device: torch.device,
) -> dict[str, float]:
    """Loss and token accuracy (real tokens) on each language's held-out solutions."""
    decoder.eval()
    values: dict[str, float] = {}
    for language, samples in valid.items():
        loss_sum, accuracy_sum, batches = 0.0, 0.0, 0
        for start in range(0, len(samples), config.batch_size):
            if batches >= config.valid_batches:
                break
            batch = samples.batch(
                range(start, min(start + config.batch_size, len(samples))), device
            )
            loss, accuracy = step_outputs(decoder, encoder, batch, config.mask_padding, "slots")
            loss_sum += loss.item()
            accuracy_sum += accuracy["token_accuracy"].item()
            batches += 1
        if batches:
            values[f"valid_loss_{language}"] = loss_sum / batches
            values[f"token_accuracy_{language}"] = accuracy_sum / batches
    decoder.train()
    return values


def _summary(
    data: list[LanguageData],
    history: list[dict[str, Any]],
    executions: dict[str, list[dict[str, Any]]],
    end_to_end: dict[str, list[dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    first = next(row for row in history if row.get("epoch") == 0)
    last = [row for row in history if "epoch" in row][-1]
    summary = {}
    for item in data:
        summary[item.language] = {
            "problem_source": item.source,
            "train_problems": len(item.train),
            "held_out_problems": len(item.held_out),
            "corpus_files": len(item.corpus),
            "valid_loss_initial": first.get(f"valid_loss_{item.language}"),
            "valid_loss": last.get(f"valid_loss_{item.language}"),
            "valid_token_accuracy_initial": first.get(f"token_accuracy_{item.language}"),
            "valid_token_accuracy": last.get(f"token_accuracy_{item.language}"),
            # The decoder alone: the code decoded from each held-out solution's own frame.
            **verdicts(executions[item.language]),
            # The whole model: from the problem's text through the VFN to the new decoder.
            "end_to_end": verdicts(end_to_end[item.language]),
        }
    return summary


def _log(ctx: PhaseContext, history: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """A metrics row to the phase's metrics file and to the history the report is built from."""
    values = {key: float(value) for key, value in row.items() if key != "step"}
    ctx.metrics.log_metrics(int(row["step"]), **values)
    history.append(row)


def _save(
    ctx: PhaseContext,
    decoder: CodeDecoder,
    optimizer: torch.optim.Optimizer,
    state: TrainerState,
    history: list[dict[str, Any]],
) -> None:
    with ctx.checkpoints.save(state.step) as folder:
        loop = {**attrs.asdict(state), "history": history}
        write_training_state(Path(folder), {MODEL: decoder}, optimizer, loop)


def _restore(
    ctx: PhaseContext, decoder: CodeDecoder, optimizer: torch.optim.Optimizer
) -> tuple[TrainerState, list[dict[str, Any]]]:
    latest = ctx.checkpoints.latest()
    if latest is None:
        return TrainerState(), []
    loop = read_training_state(Path(latest.path), {MODEL: decoder}, optimizer)
    history = list(loop.pop("history", []))
    return TrainerState(**loop), history
