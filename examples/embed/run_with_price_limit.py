"""Embed voltx in a Python program: plan, check the price against a limit, run, read the results.

A template to copy. It plans the target (each phase priced on the backend the project routes it
to), refuses to start when the plan's conservative cost is over ``--max-dollars``, runs with that
limit as the run's budget, and prints each phase's outcome and the benchmark report's figures
(the data ``voltx report --json`` prints).

    python run_with_price_limit.py 5.3 --max-dollars 40 --profile full
    python run_with_price_limit.py 5.3 --max-dollars 1 --store ./store --backend local

Exit codes: 0 the run succeeded, 1 it failed, 2 the plan costs more than the limit (nothing ran).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import voltx
from voltx.cli.report import REPORT_ARTIFACT, efficiency, report_folder

OVER_LIMIT_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="5.3")
    parser.add_argument("--max-dollars", type=float, required=True)
    parser.add_argument("--store", help="store URL or folder (default: the project's)")
    parser.add_argument("--config", help="voltx.toml (default: the nearest one)")
    parser.add_argument("--backend", help="the run's default backend (routing rules still apply)")
    parser.add_argument("--profile", help="tiny or full (default: the project's)")
    args = parser.parse_args(argv)
    options = voltx.SessionOptions(
        store=args.store, config=args.config, backend=args.backend, profile=args.profile
    )

    # 1. The plan: what would run, where, for how much. Nothing is rented or started.
    plan = voltx.plan(args.target, options=options)
    low, high = plan.timeline.dollars if plan.timeline else (0.0, 0.0)
    for phase in plan.phases:
        print(f"plan: {phase.phase_id:6} {phase.action:4} on {phase.backend}: {phase.reason}")
    print(f"plan: ${low:,.2f}-{high:,.2f} for {len(plan.to_run)} phase(s) to run")

    # 2. The price check: the conservative end of the estimate against the limit.
    if high > args.max_dollars:
        print(
            f"refused: the plan may cost ${high:,.2f}, over the limit of ${args.max_dollars:,.2f}",
            file=sys.stderr,
        )
        return OVER_LIMIT_EXIT

    # 3. The run, with the limit as its budget (estimates can be wrong; the meter is not).
    result = voltx.run(args.target, options=options, budget=args.max_dollars)
    for phase_id, outcome in result.phases.items():
        print(f"run: {phase_id:6} {outcome.status:9} {outcome.backend or '-':8} {outcome.reason}")
    print(f"run {result.run_id}: {result.status}, spent ${result.spent:,.2f}")
    if not result.ok:
        return 1

    # 4. The results: each artifact's digest, and the benchmark report when the run made one.
    for name, digest in sorted(result.outputs().items()):
        print(f"artifact: {name} {digest[:12]}")
    if REPORT_ARTIFACT in result.outputs():
        print("report: " + json.dumps(read_report(args.store, args.config), sort_keys=True))
    return 0


def read_report(store: str | None, config: str | None) -> dict[str, Any]:
    """The latest benchmark report's data with its efficiency figures (``voltx report --json``)."""
    folder, opened, artifact = report_folder(store, config, None)
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return {**data, **efficiency(opened, artifact, folder)}


if __name__ == "__main__":
    sys.exit(main())
