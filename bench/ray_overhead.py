"""Ray backend overhead: the scheduler bench's sleep graph on Ray over the same graph run locally.

    python bench/ray_overhead.py [--seconds 2] [--repeat 5] [--width 2]

Starts its own Ray head bound to 127.0.0.1 (usage statistics and dashboard off, its own temp
folder), runs bench/_sleep_plugin.py's diamond-and-fan graph on the ray backend and on the local
backend in interleaved pairs (the order alternating), and prints the median of the per-pair wall
time ratios ray / local with their spread. The target is at most 1.2. The head is stopped by its
processes' ids at the end (``ray stop`` would stop every Ray cluster of the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = 1.2


def start_head(temp_dir: Path, cpus: int) -> str:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    command = [
        str(Path(sys.executable).with_name("ray")), "start", "--head",
        "--node-ip-address=127.0.0.1", "--port=0", f"--num-cpus={cpus}", "--num-gpus=0",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    # With --port=0 the address is not printed; the head writes it into its temp folder.
    current = temp_dir / "ray_current_cluster"
    address = current.read_text().strip() if current.exists() else ""
    match = re.fullmatch(r"127\.0\.0\.1:\d+", address)
    if result.returncode != 0 or not match:
        raise SystemExit(f"ray start failed:\n{result.stdout}\n{result.stderr}")
    return address


def stop_head(temp_dir: Path) -> None:
    import psutil

    marker = str(temp_dir)
    found: dict[int, Any] = {}
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in process.info["cmdline"] or ()):
                found[process.pid] = process
                found.update({c.pid: c for c in process.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for process in found.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(list(found.values()), timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="sleep of each phase")
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs")
    parser.add_argument("--width", type=int, default=2)
    args = parser.parse_args()
    os.environ["VOLTX_BENCH_WIDTH"] = str(args.width)
    # The workers are subprocesses (of Ray actors, on the Ray side): they find the bench plugin
    # through these variables, which the ray backend forwards.
    search_path = [str(HERE), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, search_path))
    os.environ["VOLTX_PLUGINS"] = "_sleep_plugin"
    os.environ["VOLTX_LOAD_PLUGINS"] = "backends"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    sys.path.insert(0, str(HERE))

    import _sleep_plugin

    import voltx
    from voltx._logging import configure_logging
    from voltx_backends import LocalBackend
    from voltx_backends.ray import RayBackend, RaySettings

    configure_logging(json=True, stream=open(os.devnull, "w"), force=True)  # noqa: SIM115
    temp_dir = Path(tempfile.mkdtemp(prefix="vray-bench-", dir="/tmp"))
    forward = ("PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_LOAD_PLUGINS")
    try:
        # Twice the lanes: a finished job's actor gives its CPU back as its process exits, and
        # the next phase's actor should not queue behind that exit.
        address = start_head(temp_dir, cpus=2 * args.width)
        settings = RaySettings(
            address=address,
            runtime_env="inherit",
            job_root=str(temp_dir / "voltx"),
            forward_env=forward,
        )
        ray_backend = RayBackend(settings=settings)
        ray_backend.capacity()  # connect now: the driver's start-up is not the graph's time

        def run_once(backend: Any, folder: Path) -> float:
            salt = uuid.uuid4().hex
            overrides = {f"bench.{n}.seconds": args.seconds for n in _sleep_plugin.GRAPH}
            overrides |= {f"bench.{n}.salt": salt for n in _sleep_plugin.GRAPH}
            started = time.perf_counter()
            result = voltx.run(
                "bench.e", backend=backend, store=str(folder / "store"), overrides=overrides
            )
            wall = time.perf_counter() - started
            result.raise_for_status()
            return wall

        ratios = []
        for pair in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                local = LocalBackend(work_dir=Path(folder) / "work", cpu_cores=args.width)
                sides = [("ray", ray_backend), ("local", local)]
                if pair % 2:
                    sides.reverse()  # neither side always runs on the warmer machine
                walls = {name: run_once(backend, Path(folder) / name) for name, backend in sides}
            ratio = walls["ray"] / walls["local"]
            ratios.append(ratio)
            print(
                f"pair {pair + 1}: ray {walls['ray']:.2f} s, local {walls['local']:.2f} s, "
                f"ratio {ratio:.3f}"
            )
        ray_backend.close()
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    median = statistics.median(ratios)
    print(
        f"width {args.width}, {args.seconds:g} s per phase, {args.repeat} pairs; "
        f"ratio spread {min(ratios):.3f} .. {max(ratios):.3f}"
    )
    print(f"ray / local wall time ratio: {median:.3f} (target <= {TARGET})")
    return 0 if median <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
