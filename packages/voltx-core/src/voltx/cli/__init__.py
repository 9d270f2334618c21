"""The ``voltx`` command. Each subcommand lives in `commands` or `artifacts`.

A few subcommands belong to another distribution (``voltx vast`` to voltx-backends): voltx runs
them by module name, imported only when the command is used (`PLUGIN_COMMANDS`), so voltx itself
never imports the package and still works, with a clear error, where it is not installed.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import sys
import traceback
from types import FrameType, TracebackType

from voltx._logging import configure_logging, redact_text
from voltx.errors import VoltxError

# Subcommands of other distributions: name -> (module with ``main(argv) -> int``, distribution,
# help). Everything after the name goes to that ``main`` untouched, ``--help`` included.
PLUGIN_COMMANDS = {
    "vast": ("voltx_backends.vast.cli", "voltx-backends", "Vast.ai instances: ls, reap"),
}
# Options of `voltx` itself that take a value (the command word comes after them).
_GLOBAL_VALUE_OPTIONS = frozenset({"--store", "-s", "--config", "-c"})


def _split_plugin_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``voltx [options] vast ls -a`` -> (``[options] vast``, ``ls -a``); other commands whole."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in _GLOBAL_VALUE_OPTIONS:
            index += 2
        elif word.startswith("-"):
            index += 1
        else:
            if word in PLUGIN_COMMANDS:
                return argv[: index + 1], argv[index + 1 :]
            break
    return argv, []


def _run_plugin_command(module_name: str, distribution: str, args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise VoltxError(
                f"`voltx {args.command}` comes with the {distribution} package, which is not "
                f"installed: pip install {distribution}"
            ) from None
        raise
    forwarded = [*(["--store", args.store] if args.store else [])]
    forwarded += ["--config", args.config] if args.config else []
    code: int = module.main([*forwarded, *args.plugin_argv])
    return code


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
    from voltx.cli import artifacts, commands, generate, report

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
    run.add_argument(
        "--max-attempts",
        type=int,
        help="attempts for a job that is lost or killed by a signal (default 3)",
    )
    run.add_argument(
        "--budget",
        type=float,
        metavar="DOLLARS",
        help="stop the run when its spend reaches this (default: the project's [budget])",
    )
    run.add_argument(
        "--max-hours",
        type=float,
        metavar="HOURS",
        help="stop the run after this much wall time (default: the project's [budget])",
    )
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
    generate.add_parser(sub)
    report.add_parser(sub)

    for name, (module_name, distribution, help_text) in PLUGIN_COMMANDS.items():
        plugin = sub.add_parser(name, help=f"{help_text} (from {distribution})", add_help=False)
        plugin.set_defaults(
            handler=functools.partial(_run_plugin_command, module_name, distribution),
            plugin_argv=[],
        )

    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("job_file")
    worker.set_defaults(handler=commands.cmd_worker)
    return parser


def _one_line(message: str) -> str:
    # Messages from pluggy or a plugin's exception can span lines; the error stays one line.
    return " | ".join(line.strip() for line in message.splitlines() if line.strip())


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print_redacted_traceback() -> None:
    """The current exception's traceback on stderr, with every registered secret as ``***``:
    a config value passed with ``--set`` appears in the frames' messages as it was typed."""
    sys.stderr.write(redact_text(traceback.format_exc()))


def _redacting_excepthook(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """Print an uncaught error's traceback (a bug, not a VoltxError) without its secrets."""
    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, exc, tb))))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a VoltxError becomes one line on stderr and a non-zero exit."""
    head, plugin_argv = _split_plugin_command(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(head)
    if plugin_argv:
        args.plugin_argv = plugin_argv
    if args.command != "worker":
        configure_logging(
            json=True if args.json_logs else None,
            level=logging.DEBUG if args.debug else logging.INFO,
            force=True,
        )
    # SIGTERM stops like Ctrl-C does: a run cancels its jobs and leaves its ledger consistent; a
    # worker (cancelled, or out of budget) still sends its last checkpoint to the store.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sys.excepthook = _redacting_excepthook
    try:
        code: int = args.handler(args)
        return code
    except VoltxError as exc:
        if args.debug:
            _print_redacted_traceback()
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
