"""One data-parallel rank: ``python -m voltx._rank JOB_DIR``, started by torchrun for the worker
(`voltx.data_parallel`). Kept apart from the launcher so the worker imports no rank code."""

from __future__ import annotations

import os
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


def main(argv: list[str]) -> int:
    """One rank: ``python -m voltx._rank JOB_DIR``, under torchrun."""
    _watch_parent()
    return run_rank(Path(argv[0]), rank=int(os.environ["RANK"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
