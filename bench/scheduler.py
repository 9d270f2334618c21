"""Scheduler overhead: wall time of a diamond-and-fan graph over its critical path.

    python bench/scheduler.py [--seconds 3] [--repeat 2]

Each phase sleeps a known time on the local backend (a real worker subprocess per phase). The
graph's widest level is as wide as this machine has cores (at least 2, `--width` to change),
so a perfect scheduler takes exactly the critical path: 5 x seconds. The ratio printed is
wall / critical path; the target is at most 1.15. The per-phase overhead (worker start, input
staging, commit, polling) is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="sleep of each phase")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--width", type=int, default=max(2, os.cpu_count() or 2))
    args = parser.parse_args()
    os.environ["VOLTX_BENCH_WIDTH"] = str(args.width)

    # The workers are subprocesses: they find the bench plugin through these variables.
    search_path = [str(HERE), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, search_path))
    os.environ["VOLTX_PLUGINS"] = "_sleep_plugin"
    os.environ["VOLTX_LOAD_PLUGINS"] = "backends"
    sys.path.insert(0, str(HERE))

    import _sleep_plugin

    import voltx
    from voltx._logging import configure_logging
    from voltx_backends import LocalBackend

    configure_logging(json=True, stream=open(os.devnull, "w"), force=True)  # noqa: SIM115
    critical = _sleep_plugin.CRITICAL_PATH_LENGTH * args.seconds
    ratios = []
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            backend = LocalBackend(work_dir=Path(folder) / "work", cpu_cores=args.width)
            salt = uuid.uuid4().hex
            overrides = {f"bench.{n}.seconds": args.seconds for n in _sleep_plugin.GRAPH}
            overrides |= {f"bench.{n}.salt": salt for n in _sleep_plugin.GRAPH}
            started = time.perf_counter()
            result = voltx.run(
                "bench.e", backend=backend, store=str(Path(folder) / "store"), overrides=overrides
            )
            wall = time.perf_counter() - started
        result.raise_for_status()
        ratio = wall / critical
        ratios.append(ratio)
        overhead = (wall - critical) / _sleep_plugin.CRITICAL_PATH_LENGTH
        print(
            f"run {attempt + 1}: wall {wall:.2f} s, critical path {critical:.2f} s, "
            f"ratio {ratio:.3f}, overhead per phase on the path {overhead * 1000:.0f} ms"
        )
    best = min(ratios)
    verdict = "ok" if best <= 1.15 else "over target"
    print(
        f"width {args.width}, {args.seconds} s per phase; wall / critical path: "
        f"best {best:.3f}, worst {max(ratios):.3f} (target <= 1.15: {verdict})"
    )
    return 0 if best <= 1.15 else 1


if __name__ == "__main__":
    sys.exit(main())
