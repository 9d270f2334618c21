"""Helpers shared by tests (importable as `_support`; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "voltx-example-textstats"
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"
# What a Ray driver or node of the tests needs to stay on loopback (tests/backends/ray_fixtures.py);
# read by Ray once, at its first import, so conftest.py sets it before any test module loads.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Without it a driver swaps 127.0.0.1 for the machine's own address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # The driver (the test process) binds 127.0.0.1 too.
    "RAY_NODE_IP_ADDRESS": "127.0.0.1",
}


def install_plugin(source: Path, site: Path) -> Path:
    """Install the plugin project at `source` from its own pyproject into `site`, offline and
    without its dependencies (they are this venv's), and return `site`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return site


def subprocess_env(*python_paths: Path, **extra: str) -> dict[str, str]:
    """The environment for a voltx subprocess that sees `python_paths` first."""
    env = dict(os.environ)
    joined = os.pathsep.join(str(p) for p in python_paths)
    if joined:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [joined, env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def statuses(stdout: str) -> dict[str, str]:
    """phase id -> status, from the table `voltx run` prints."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("succeeded", "skipped", "failed", "blocked"):
            rows[parts[0]] = parts[1]
    return rows


class CommandLineWatch:
    """Reads every process's command line while a run goes on, looking for a secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.seen: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CommandLineWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.scans += 1
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes()
                except OSError:
                    continue
                if self.secret in text:
                    self.seen.append(text.replace(b"\0", b" ").decode(errors="replace"))


def voltx_cli(
    *args: str, cwd: Path, env: dict[str, str], check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m voltx ARGS` in `cwd`; with `check`, a non-zero exit fails with its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "voltx", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"voltx {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll `condition` every 50 ms until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def checkpoint_steps(project: Path, phase_id: str) -> list[int]:
    """The steps of the checkpoints committed so far for `phase_id` in the project's store."""
    folder = project / ".voltx" / "checkpoints" / phase_id
    return [int(path.name.split("-")[1]) for path in folder.glob("*/step-*")]


def kill_job_at_checkpoints(
    process: subprocess.Popen[str],
    project: Path,
    phase_id: str,
    targets: Sequence[int],
    timeout: float = 240.0,
) -> list[int]:
    """SIGKILL the running job's process group each time a checkpoint reaches the next target.

    `process` is a `voltx run` in `project` with retries left, so each kill is a lost attempt it
    resubmits; the job killed is the newest in the project's job folders. Returns the latest
    checkpoint step at each kill (fewer than `targets` if the run finished first).
    """
    pending, kills = list(targets), []
    jobs = project / ".voltx" / "work" / "jobs"
    deadline = time.monotonic() + timeout
    while pending and process.poll() is None and time.monotonic() < deadline:
        steps = checkpoint_steps(project, phase_id)
        pid_files = sorted(jobs.glob("*/pid"))
        if steps and max(steps) >= pending[0] and pid_files:
            os.killpg(int(pid_files[-1].read_text()), signal.SIGKILL)
            kills.append(max(steps))
            pending.pop(0)
        time.sleep(0.02)
    return kills


def column(table_text: str, header: str) -> dict[str, str]:
    """phase id -> the cell under `header`, from a table the CLI printed (left-aligned columns)."""
    lines = table_text.splitlines()
    head = lines[0]
    start = head.index(header)
    rest = head[start + len(header) :]
    end = start + len(header) + (len(rest) - len(rest.lstrip())) if rest.strip() else None
    cells = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells[line.split()[0]] = line[start:end].strip()
    return cells
