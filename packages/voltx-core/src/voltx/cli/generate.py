"""``voltx generate``: code samples for a prompt (or a problem file) from the store's model.

voltx generate "Write a function that returns the sum of a list" -n 4
voltx generate --file problems.jsonl -n 2 --temperature 0 --json
voltx generate "..." --digest scaled_vfn=3f2a9c1e     # another version of one artifact
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import attrs

from voltx.errors import GenerationError, SourceFileError
from voltx.generation import HardCoreReport


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("generate", help="write code samples with the store's trained model")
    parser.add_argument("prompt", nargs="?", help="the task in natural language")
    parser.add_argument(
        "--file",
        type=Path,
        help="prompts from a file: unified problem JSONL (each line's query) or plain text",
    )
    parser.add_argument("-n", type=int, default=1, help="samples per prompt (default 1)")
    parser.add_argument(
        "--temperature", "-t", type=float, default=0.8, help="0 is greedy (default 0.8)"
    )
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus size (default 0.95)")
    parser.add_argument("--max-tokens", type=int, default=0, help="default: the decoder's limit")
    parser.add_argument(
        "--max-iterations", type=int, default=50, help="reasoning budget (default 50)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default auto)")
    parser.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="ARTIFACT=DIGEST",
        help="use this version of an artifact instead of the latest (repeatable)",
    )
    parser.add_argument("--generator", default="volt_x", help="registered generator name")
    parser.add_argument("--json", action="store_true", help="print the samples as JSON")
    parser.set_defaults(handler=cmd_generate)


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompt argument, or the prompts of `--file`, not both."""
    if (args.prompt is None) == (args.file is None):
        raise GenerationError("give a prompt or --file PATH (one of them)")
    if args.file is None:
        return [args.prompt]
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceFileError(str(args.file), exc.strerror or str(exc)) from None
    if args.file.suffix != ".jsonl":
        return [text]
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompts.append(str(json.loads(line)["query"]))
        except (ValueError, KeyError, TypeError):
            raise SourceFileError(
                f"{args.file}:{number}", "not a problem with a 'query' field"
            ) from None
    return prompts


def _digests(pairs: list[str]) -> dict[str, str]:
    digests = {}
    for pair in pairs:
        name, sep, digest = pair.partition("=")
        if not sep or not name or not digest:
            raise GenerationError(f"--digest {pair!r}: expected ARTIFACT=DIGEST")
        digests[name] = digest
    return digests


def _hard_core_line(report: HardCoreReport) -> str:
    """Routing, global gamma and safety verdict in one line (docs/cli.md, generate)."""
    strand = report.strand or "none"
    violated = f" ({', '.join(report.violated_axioms)} violated)" if report.violated_axioms else ""
    return (
        f"strand {strand}, global gamma {report.global_gamma:.3f}, "
        f"safety {report.safety_level}{violated}"
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from voltx.generate_code import generate

    problems = generate(
        read_prompts(args),
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        max_iterations=args.max_iterations,
        seed=args.seed,
        device=args.device,
        store=args.store,
        config=args.config,
        digests=_digests(args.digest),
        generator=args.generator,
    )
    if args.json:
        json.dump([attrs.asdict(problem) for problem in problems], sys.stdout, indent=1)
        print()
        return 0
    for problem in problems:
        lines = problem.prompt.strip().splitlines()
        print(f"# {lines[0] if lines else '(empty prompt)'}")
        if problem.samples:
            signals = problem.samples[0].signals
            print(
                f"# reasoning: {problem.rar_iterations} iterations, "
                f"{signals.rar_converged_slots} of {signals.rar_active_slots} filled slots "
                "converged"
            )
        if problem.hard_core is not None:
            print(f"# hard core: {_hard_core_line(problem.hard_core)}")
        for index, sample in enumerate(problem.samples, start=1):
            ending = "" if sample.stopped else ", no <eos> within the token limit"
            calibrated = sample.calibrated_confidence
            passing = "" if calibrated is None else f", calibrated {calibrated:.3f}"
            print(
                f"\n## sample {index}: confidence {sample.confidence:.3f}{passing} "
                f"(mean token log-prob {sample.signals.mean_token_logprob:.3f}, "
                f"min slot gamma {sample.signals.min_slot_gamma:.3f}{ending})"
            )
            print(sample.code)
        print()
    return 0
