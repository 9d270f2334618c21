"""The processes of a data-parallel job (`voltx.data_parallel`), kept apart from the worker's
launcher so the worker imports none of it:

- ``python -m voltx._rank --launch WORKER_PID TORCHRUN_ARGS...``: torchrun's own process. It asks
  the kernel to send it SIGTERM when the worker dies (even by SIGKILL), then replaces itself by
  ``python -m torch.distributed.run TORCHRUN_ARGS...``; torchrun passes the SIGTERM to the ranks.
- ``python -m voltx._rank JOB_DIR``: one rank, started by torchrun.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

from voltx.worker import run_rank


def _watch_parent() -> None:
    """Exit when torchrun's agent is gone: a rank must never train on alone."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def launch(worker_pid: int, torchrun_args: list[str]) -> int:
    """Become torchrun, set to receive SIGTERM when the worker dies (the setting survives
    exec). Without it, a worker killed outright would leave torchrun and its ranks running."""
    # Not Linux (no prctl): the kill of the worker's process group still reaches torchrun.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != worker_pid:
        return 1  # the worker died before the request was made
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *torchrun_args])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--launch"]:
        return launch(int(argv[1]), argv[2:])
    _watch_parent()
    return run_rank(Path(argv[0]), rank=int(os.environ["RANK"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
