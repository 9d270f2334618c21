"""The ``voltx`` command. Each subcommand lives in `commands` or `artifacts`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from types import FrameType

from voltx._logging import configure_logging, redact_text
from voltx.errors import VoltxError


def _common_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="*", default=["all"], help="phase ids, artifacts or all")
    parser.add_argument("--backend", "-b", help="local, ssh, vast, ... (default: project's)")
    parser.add_argument("--profile", "-p", help="config profile: tiny or full (default: project's)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PHASE.KEY=VALUE",
        help="override one config value, e.g. --set 2.1.batch_size=16 (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="rerun phases that are up to date")


def build_parser() -> argparse.ArgumentParser:
    from voltx import __version__
    from voltx.cli import artifacts, commands

    parser = argparse.ArgumentParser(
        prog="voltx", description="Run the Volt X training pipeline as a graph of phases."
    )
    parser.add_argument("--version", action="version", version=f"voltx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--store", "-s", help="artifact store URL (default: project's, ./.voltx)")
    parser.add_argument("--config", "-c", help="project file (default: nearest voltx.toml)")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines even on a TTY")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("phases", help="list the registered phases").set_defaults(
        handler=commands.cmd_phases
    )
    plan = sub.add_parser("plan", help="show what a run would do, and why")
    _common_run_options(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--gantt", metavar="PNG", help="also draw the timeline as a Gantt chart")
    plan.set_defaults(handler=commands.cmd_plan)

    run = sub.add_parser("run", help="run phases and everything they need")
    _common_run_options(run)
    run.add_argument("--max-parallel", "-j", type=int, help="at most this many phases at once")
    run.add_argument("--max-attempts", type=int, help="attempts for a job that is lost (default 3)")
    run.set_defaults(handler=commands.cmd_run)

    preflight = sub.add_parser("preflight", help="check inputs, store, credentials, resources")
    _common_run_options(preflight)
    preflight.set_defaults(handler=commands.cmd_preflight)

    manifest = sub.add_parser("manifest", help="the files a phase needs on its host")
    manifest.add_argument("phase_id")
    manifest.set_defaults(handler=commands.cmd_manifest)

    status = sub.add_parser("status", help="show a run's state from its ledger")
    status.add_argument("run_id", nargs="?", help="run id (default: the latest run)")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=commands.cmd_status)

    logs = sub.add_parser("logs", help="print a phase's log")
    logs.add_argument("phase_id")
    logs.add_argument("--run", dest="run_id", help="run id (default: the latest run)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    logs.set_defaults(handler=commands.cmd_logs)

    init = sub.add_parser("init", help="write a commented voltx.toml here")
    init.add_argument("--force", action="store_true", help="overwrite an existing voltx.toml")
    init.set_defaults(handler=commands.cmd_init)

    artifacts.add_parser(sub)

    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("job_file")
    worker.set_defaults(handler=commands.cmd_worker)
    return parser


def _one_line(message: str) -> str:
    # Messages from pluggy or a plugin's exception can span lines; the error stays one line.
    return " | ".join(line.strip() for line in message.splitlines() if line.strip())


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a VoltxError becomes one line on stderr and a non-zero exit."""
    args = build_parser().parse_args(argv)
    if args.command != "worker":
        configure_logging(
            json=True if args.json_logs else None,
            level=logging.DEBUG if args.debug else logging.INFO,
            force=True,
        )
        # SIGTERM stops a run like Ctrl-C does: jobs cancelled, ledger consistent.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code: int = args.handler(args)
        return code
    except VoltxError as exc:
        if args.debug:
            traceback.print_exc()
        print(
            f"voltx: error: {_one_line(redact_text(str(exc))) or type(exc).__name__}",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("voltx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `voltx phases | head`: the reader left; say nothing more (Python would complain at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
