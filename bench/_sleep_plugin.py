"""Phases for bench/scheduler.py: each sleeps `seconds` and writes one small file."""

from __future__ import annotations

import os
import time

import attrs

import voltx
from voltx import PhaseContext, PhaseSpec, Resources
from voltx.hookspecs import RegisterPhase


@attrs.frozen
class SleepConfig:
    seconds: float = 1.0
    salt: str = ""  # changed per bench run so nothing is skipped


def sleep(ctx: PhaseContext) -> None:
    time.sleep(ctx.config.seconds)
    (name,) = ctx.outputs
    (ctx.outputs[name] / "done.txt").write_text(f"{ctx.phase_id} {ctx.config.salt}\n")


def diamond_and_fan(width: int) -> dict[str, tuple[str, ...]]:
    """a -> b1..bW (fan out); c joins every b (diamond); c -> d1..dW; e joins every d.

    Critical path: a, b, c, d, e = 5 phases; widest level: `width` phases.
    """
    fan_b = tuple(f"b{i}" for i in range(1, width + 1))
    fan_d = tuple(f"d{i}" for i in range(1, width + 1))
    graph: dict[str, tuple[str, ...]] = {"a": ()}
    graph |= {b: ("a",) for b in fan_b}
    graph["c"] = fan_b
    graph |= {d: ("c",) for d in fan_d}
    graph["e"] = fan_d
    return graph


# The bench sets the width for itself and its workers, to the cores this machine has.
WIDTH = int(os.environ.get("VOLTX_BENCH_WIDTH", "4"))
GRAPH = diamond_and_fan(WIDTH)
CRITICAL_PATH_LENGTH = 5


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for name, upstream in GRAPH.items():
        register(
            PhaseSpec(
                id=f"bench.{name}",
                name=f"sleep {name}",
                entry=f"{__name__}:sleep",
                requires=tuple(f"bench_{u}" for u in upstream),
                produces=(f"bench_{name}",),
                config_class=SleepConfig,
                resources=Resources(cpu_cores=1),
            )
        )
