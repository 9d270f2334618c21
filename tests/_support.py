"""Helpers shared by tests (importable as `_support`; fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "voltx-example-textstats"
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


def subprocess_env(*python_paths: Path, **extra: str) -> dict[str, str]:
    """The environment for a voltx subprocess that sees `python_paths` first."""
    env = dict(os.environ)
    joined = os.pathsep.join(str(p) for p in python_paths)
    if joined:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [joined, env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
