"""The run-related subcommands: phases, plan, run, status, logs, init, worker."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from voltx.backend import MachineUsage
from voltx.cli._render import human_bytes, table
from voltx.errors import VoltxError
from voltx.session import SessionOptions


def _session_options(args: argparse.Namespace) -> SessionOptions:
    return SessionOptions(
        store=args.store,
        config=args.config,
        backend=args.backend,
        profile=args.profile,
        overrides=args.overrides,
    )


def cmd_phases(args: argparse.Namespace) -> int:
    from voltx.api import phases

    specs = phases()
    rows = [
        (s.id, s.name, s.family, ", ".join(s.requires) or "-", ", ".join(s.produces) or "-")
        for s in specs
    ]
    print(table(["id", "name", "family", "requires", "produces"], rows))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from voltx.api import plan

    result = plan(args.target, options=_session_options(args), force=args.force)
    if args.json:
        print(json.dumps(attrs.asdict(result), indent=1, default=str))
        return 0
    timeline = result.timeline
    rows = []
    for p in result.phases:
        entry = timeline.entry(p.phase_id) if timeline else None
        estimate = entry.estimate if entry else None
        rows.append(
            (
                p.phase_id,
                p.name,
                p.action,
                p.backend or result.backend,
                _hours(estimate.total_hours) if estimate else "-",
                _dollars(estimate.dollars) if estimate else "-",
                _at(entry.start) if entry and estimate else "-",
                f"host {entry.lane + 1}" if entry and estimate else "-",
                p.reason,
            )
        )
    headers = ["phase", "name", "action", "backend", "hours", "cost", "starts at", "lane", "why"]
    print(table(headers, rows))
    waves = " | ".join(", ".join(w) for w in result.levels)
    print(f"\nwaves (each runs in parallel): {waves}")
    if result.inputs:
        # Where each input's bytes go: a URL input is read by the host itself (docs/inputs.md).
        print("inputs:")
        for route in result.inputs:
            print(f"  {route.phase_id} {route.describe()}")
    if timeline is not None:
        # Hours timed from a phase's work say how, so a reader can check the arithmetic.
        for entry in timeline.entries:
            if entry.estimate is not None and entry.estimate.basis:
                print(f"{entry.phase_id} estimate: {entry.estimate.basis}")
        print(f"critical path: {' -> '.join(timeline.critical_path)}")
        print(
            f"total: {_hours(timeline.parallel_hours)} h in parallel on {timeline.lanes} "
            f"host(s), against {_hours(timeline.serial_hours)} h serial; "
            f"cost {_dollars(timeline.dollars)}"
        )
        by_backend = timeline.dollars_by_backend
        if len(by_backend) > 1:
            # Routed phases (`voltx.routing`): what each backend's share costs.
            print(
                "cost by backend: "
                + ", ".join(f"{name} {_dollars(span)}" for name, span in by_backend.items())
            )
        if args.gantt:
            from voltx.planning.gantt import render_gantt

            title = f"voltx plan {' '.join(args.target)} ({result.profile}, {result.backend})"
            print(f"Gantt chart: {render_gantt(timeline, Path(args.gantt), title)}")
    for line in result.machines:
        print(line)
    if result.pinned:
        print(f"using added artifacts as they are: {', '.join(result.pinned)}")
    print(f"profile {result.profile}, backend {result.backend}, store {result.store}")
    return 0


def _hours(span: tuple[float, float]) -> str:
    low, high = span
    if high < 0.1:
        return f"{low * 3600:,.0f}-{high * 3600:,.0f} s"
    return f"{low:,.1f}-{high:,.1f}"


def _at(span: tuple[float, float]) -> str:
    low, high = span
    return "at once" if high == 0 else f"+{low:,.1f}-{high:,.1f} h"


def _dollars(span: tuple[float, float]) -> str:
    low, high = span
    return "$0" if high == 0 else f"${low:,.0f}-{high:,.0f}"


def cmd_run(args: argparse.Namespace) -> int:
    from voltx.api import execute
    from voltx.backend_factory import run_backends
    from voltx.cli.live import with_live_view
    from voltx.planning.priced import estimate
    from voltx.resolve import resolve

    # Resolved once: the live view draws, and the run runs, this very plan, on these backends.
    resolved = resolve(args.target, _session_options(args), force=args.force)
    backend = run_backends(resolved)
    try:
        live_execute = with_live_view(execute, resolved, lambda: estimate(resolved, backend))
        result = live_execute(
            resolved,
            backend=backend,
            max_parallel=args.max_parallel,
            max_attempts=args.max_attempts,
            budget=args.budget,
            max_hours=args.max_hours,
        )
    finally:
        backend.close()
    _print_run(result)
    if result.status == "budget_exceeded":
        from voltx.budget import BUDGET_EXIT_CODE, stop_message

        print(f"voltx: {stop_message(result.store, result.run_id)}", file=sys.stderr)
        return BUDGET_EXIT_CODE
    return 0 if result.ok else 1


def _print_run(result: object) -> None:
    from voltx.results import RunResult

    assert isinstance(result, RunResult)
    rows = []
    for phase in result.phases.values():
        took = f"{phase.duration_s:.1f}s" if phase.duration_s is not None else "-"
        outputs = ", ".join(f"{n}@{d[:10]}" for n, d in phase.outputs.items()) or "-"
        rows.append((phase.phase_id, phase.status, took, phase.reason or "-", outputs))
    print(table(["phase", "status", "took", "reason", "outputs"], rows))
    print(f"\nrun {result.run_id}: {result.status} (store {result.store})")


def cmd_preflight(args: argparse.Namespace) -> int:
    from voltx.api import preflight

    problems = preflight(args.target, options=_session_options(args))
    for problem in problems:
        print(f"problem: {problem}")
    print("preflight: ok" if not problems else f"preflight: {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from voltx.planning.manifest import manifest

    entries = manifest(args.phase_id, store=args.store, config=args.config)
    rows = [
        (
            e.artifact + (" (optional)" if e.optional else ""),
            e.path,
            human_bytes(e.size) if e.size is not None else "-",
            e.source,
            e.digest or "-",
        )
        for e in entries
    ]
    print(table(["artifact", "file", "size", "comes from", "digest"], rows))
    known = [e.size for e in entries if e.size is not None]
    print(f"\n{len(entries)} file(s), {human_bytes(sum(known))} known")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from voltx.api import status

    result = status(args.run_id, store=_store_for(args))
    if args.json:
        print(json.dumps(attrs.asdict(result), indent=1, default=str))
        return 0
    rows = [
        (
            p.phase_id,
            p.status,
            p.backend or "-",
            p.attempts,
            p.started_at or "-",
            p.finished_at or "-",
            f"${p.spent:.2f}",
            p.reason or "-",
        )
        for p in result.phases.values()
    ]
    headers = ["phase", "status", "backend", "attempts", "started", "finished", "spent", "reason"]
    print(table(headers, rows))
    detail = f" ({result.detail})" if result.detail else ""
    if result.machines:
        print(machines_section(result.machines))
    print(f"\nrun {result.run_id}: {result.status}{detail}; spent ${result.spent:.2f}")
    return 0


def machines_section(machines: Sequence[MachineUsage]) -> str:
    """`voltx status`'s lines on the rented machines kept between jobs: the billable prep
    (rented -> first phase running) and idle time of each, with their dollars."""
    from voltx.budget import dollars

    rows = [
        (
            m.label,
            f"${m.dollars_per_hour:.2f}",
            m.jobs_run,
            f"{m.prep_s:.0f} s",
            dollars(m.prep_dollars),
            f"{m.idle_s:.0f} s",
            dollars(m.idle_dollars),
            m.released or "run ended",
        )
        for m in machines
    ]
    headers = ["machine", "$/h", "phases", "prep", "prep $", "idle", "idle $", "released"]
    prep = sum(m.prep_dollars for m in machines)
    idle = sum(m.idle_dollars for m in machines)
    return (
        f"\nmachines:\n{table(headers, rows)}\n"
        f"{len(machines)} machine(s): prep {dollars(prep)}, idle {dollars(idle)}"
    )


def _store_for(args: argparse.Namespace) -> str | None:
    if args.store:
        return str(args.store)
    if args.config:
        from voltx.project import load_project

        return load_project(Path(args.config)).store
    return None


def cmd_logs(args: argparse.Namespace) -> int:
    from voltx.backend_factory import make_backend
    from voltx.cli.follow import print_log
    from voltx.ledger import latest_run_id
    from voltx.session import open_session

    session = open_session(store=args.store, config=args.config)
    run_id = args.run_id or latest_run_id(session.store)
    if run_id is None:
        raise VoltxError(f"no runs in store {session.store.url}")
    print_log(session, run_id, args.phase_id, sys.stdout.buffer, make_backend, follow=args.follow)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from voltx.project import INIT_TEMPLATE, PROJECT_FILE

    target = Path(PROJECT_FILE)
    if target.exists() and not args.force:
        raise VoltxError(f"{target} exists; use --force to overwrite it")
    target.write_text(INIT_TEMPLATE, encoding="utf-8")
    print(f"wrote {target.resolve()}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from voltx.worker import main

    return main([args.job_file])
