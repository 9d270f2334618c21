"""Phase 2.0: encode every problem dataset once into frames, with the frozen encoder.

    voltx run 2.0
    python -c 'import voltx; voltx.run("2.0")'

The original rebuilt these frames at the start of every training run (and on the CPU even with
`--device cuda`); caching them as an artifact means the three curriculum stages, and any rerun,
read them instead. Output: `problem_frames`, one ``<dataset>.safetensors`` per dataset (format in
`frames.py`).
"""

from __future__ import annotations

from tokenizers import Tokenizer

from voltx import PhaseContext
from voltx_phases._common.devices import resolve_device
from voltx_phases.datasets.schema import read_problems
from voltx_phases.models.loading import load_encoder
from voltx_phases.soft_core.config import PROBLEM_DATASETS
from voltx_phases.soft_core.frames import FrameSet, encode_texts, write_frame_set


def run(ctx: PhaseContext) -> None:
    config = ctx.config
    device = resolve_device(config.device, ctx)
    tokenizer = Tokenizer.from_file(str(ctx.input_file("code_tokenizer", "*.json")))
    encoder = load_encoder(ctx.input_file("code_encoder", "*.safetensors")).eval()
    out = ctx.outputs["problem_frames"]
    for index, dataset in enumerate(PROBLEM_DATASETS, 1):
        problems = list(read_problems(ctx.input_file(dataset, "*.jsonl")))
        queries, query_present = encode_texts(
            encoder, tokenizer, [p.query for p in problems], device, config.batch_size
        )
        solutions, solution_present = encode_texts(
            encoder, tokenizer, [p.solution for p in problems], device, config.batch_size
        )
        frames = FrameSet(
            ids=tuple(p.id for p in problems),
            query=queries,
            query_present=query_present,
            solution=solutions,
            solution_present=solution_present,
        )
        write_frame_set(out / f"{dataset}.safetensors", frames)
        shared = int((query_present & solution_present).sum())
        ctx.log.info("frames encoded", dataset=dataset, problems=len(problems), slot_pairs=shared)
        ctx.progress(index, len(PROBLEM_DATASETS))
