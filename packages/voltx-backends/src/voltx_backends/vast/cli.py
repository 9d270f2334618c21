"""``voltx vast ls`` and ``voltx vast reap``: what runs on Vast.ai, what it costs, and cleaning up.

    voltx vast ls            # voltx's instances: state, owner, price, cost so far
    voltx vast ls --all      # every instance of the account
    voltx vast reap -n       # which voltx instances no live run owns (nothing destroyed)
    voltx vast reap          # destroy them
    voltx vast machines      # pooled machines given back: prep, idle and busy time, and cost

The core CLI hands ``voltx vast ...`` to `main` here, by module name, without importing this
package itself (voltx never imports voltx_backends). The backend settings and the work folder
(where the leases that say who owns an instance live) come from the project, as for a run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from voltx.errors import BackendError
from voltx_backends.vast._local import LeaseRecord
from voltx_backends.vast.backend import VastBackend
from voltx_backends.vast.instances import Instance


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voltx vast", description="Vast.ai instances rented by voltx."
    )
    parser.add_argument("--store", "-s", help="artifact store URL (default: project's)")
    parser.add_argument("--config", "-c", help="project file (default: nearest voltx.toml)")
    commands = parser.add_subparsers(dest="vast_command", required=True, metavar="ACTION")
    ls = commands.add_parser("ls", help="instances, their owners and what they cost so far")
    ls.add_argument("--all", "-a", action="store_true", help="also instances voltx did not rent")
    ls.add_argument("--json", action="store_true", help="print as JSON")
    ls.set_defaults(handler=cmd_ls)
    reap = commands.add_parser("reap", help="destroy voltx instances no live run owns")
    reap.add_argument("--dry-run", "-n", action="store_true", help="only say what would go")
    reap.set_defaults(handler=cmd_reap)
    machines = commands.add_parser(
        "machines", help="pooled machines given back: prep, idle and busy time and their cost"
    )
    machines.add_argument("--run", help="only this run's machines")
    machines.add_argument("--json", action="store_true", help="print as JSON")
    machines.set_defaults(handler=cmd_machines)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``voltx vast``; errors are `VoltxError`s for the core CLI to print."""
    args = build_parser().parse_args(argv)
    backend = open_backend(args.store, args.config)
    try:
        code: int = args.handler(args, backend)
        return code
    finally:
        backend.close()


def open_backend(store: str | None, config: str | None) -> VastBackend:
    """The Vast backend as a run of this project would make it (settings and work folder)."""
    from voltx.backend_factory import make_backend
    from voltx.session import open_session

    backend = make_backend(open_session(store=store, config=config), "vast")
    if not isinstance(backend, VastBackend):
        raise BackendError(f"backend vast is {type(backend).__name__}, not voltx's", "vast")
    return backend


def _owner(instance: Instance, lease: LeaseRecord | None) -> str:
    if not instance.is_voltx:
        return "-"
    if lease is None:
        return "orphan"
    where = f"pid {lease.owner.pid}@{lease.owner.host}"
    return where if lease.alive() else f"orphan (was {where})"


def _age(instance: Instance, now: float) -> str:
    if instance.start_date is None:
        return "-"
    minutes = max(0, int((now - instance.start_date) // 60))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, as wide as their widest cell (like the core CLI's tables)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_ls(args: argparse.Namespace, backend: VastBackend) -> int:
    now = time.time()
    listed = [(i, lease) for i, lease in backend.instances() if args.all or i.is_voltx]
    if args.json:
        rows: list[dict[str, Any]] = [
            {
                "id": i.id,
                "label": i.label,
                "state": i.state,
                "gpu": f"{i.num_gpus}x {i.gpu_name}".strip(),
                "dph_total": i.dph_total,
                "cost_so_far": round(i.cost_so_far(now), 4),
                "owner": _owner(i, lease),
            }
            for i, lease in listed
        ]
        print(json.dumps(rows, indent=1))
        return 0
    if not listed:
        print("no voltx instances" if not args.all else "no instances")
        return 0
    rows_text = [
        (
            i.id,
            i.label or "-",
            i.state,
            f"{i.num_gpus}x {i.gpu_name}".strip(),
            f"{i.dph_total:.3f}",
            _age(i, now),
            f"{i.cost_so_far(now):.2f}",
            _owner(i, lease),
        )
        for i, lease in listed
    ]
    print(table(["id", "label", "state", "gpu", "$/h", "age", "$ so far", "owner"], rows_text))
    total = sum(i.cost_so_far(now) for i, _lease in listed)
    hourly = sum(i.dph_total for i, _lease in listed if i.state == "running")
    print(f"\n{len(listed)} instance(s): ${total:.2f} so far, ${hourly:.3f}/h now")
    return 0


def cmd_reap(args: argparse.Namespace, backend: VastBackend) -> int:
    orphans = backend.reap(dry_run=args.dry_run)
    verb = "would destroy" if args.dry_run else "destroyed"
    for instance in orphans:
        print(f"{verb} instance {instance.id} ({instance.label}, {instance.state})")
    if not orphans:
        print("no orphan voltx instances")
    return 0


def cmd_machines(args: argparse.Namespace, backend: VastBackend) -> int:
    records = backend.state.machine_records()
    if args.run is not None:
        records = [r for r in records if r.get("run_id") == args.run]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    if not records:
        print("no pooled machines recorded")
        return 0

    def spent(record: dict[str, Any], what: str) -> str:
        time_s = float(record.get(f"{what}_s") or 0.0)
        return f"{time_s:.0f} s (${float(record.get(f'{what}_dollars') or 0.0):.2f})"

    rows = [
        (
            r.get("label", "-"),
            f"{float(r.get('dollars_per_hour') or 0.0):.3f}",
            r.get("jobs_run", 0),
            spent(r, "prep"),
            spent(r, "idle"),
            f"{float(r.get('busy_s') or 0.0):.0f} s",
            f"{float(r.get('dollars') or 0.0):.2f}",
            r.get("released", "-"),
        )
        for r in records
    ]
    print(table(["label", "$/h", "jobs", "prep", "idle", "busy", "$", "released"], rows))
    prep = sum(float(r.get("prep_dollars") or 0.0) for r in records)
    idle = sum(float(r.get("idle_dollars") or 0.0) for r in records)
    total = sum(float(r.get("dollars") or 0.0) for r in records)
    print(f"\n{len(records)} machine(s): ${total:.2f}, of which prep ${prep:.2f}, idle ${idle:.2f}")
    return 0
