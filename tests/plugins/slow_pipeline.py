"""A test plugin: a chain of phases that take known time, and a phase with a secret config value.

Loaded in worker subprocesses through ``VOLTX_PLUGINS=slow_pipeline`` with this folder on
``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import time

import attrs

import voltx
from voltx import PhaseContext, PhaseSpec
from voltx.hookspecs import RegisterPhase


@attrs.frozen
class SleepConfig:
    seconds: float = 0.2
    label: str = "x"


@attrs.frozen
class SecretConfig:
    api_token: str = ""
    rounds: int = 1


def sleep_then_write(ctx: PhaseContext) -> None:
    (name,) = ctx.outputs
    # Write part of the output first: a kill in the middle must not make it visible.
    (ctx.outputs[name] / "part-1.txt").write_text(f"{ctx.phase_id} {ctx.config.label}\n")
    deadline = time.monotonic() + ctx.config.seconds
    step = 0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        step += 1
        ctx.progress(step)
    for source in ctx.inputs.values():
        for path in sorted(source.rglob("*.txt")):
            (ctx.outputs[name] / f"from-{path.name}").write_text(path.read_text())
    (ctx.outputs[name] / "part-2.txt").write_text("done\n")


def use_secret(ctx: PhaseContext) -> None:
    token = ctx.config.api_token
    if not token:
        raise ValueError("api_token did not reach the phase")
    ctx.log.info("using token", api_token=token, config=attrs.asdict(ctx.config))
    ctx.log.info("the token is " + token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    (ctx.outputs["secret_proof"] / "proof.txt").write_text(digest)


def fail(ctx: PhaseContext) -> None:
    raise RuntimeError("deliberate failure for the test")


PHASES = (
    PhaseSpec(
        id="slow.a",
        name="a",
        entry=f"{__name__}:sleep_then_write",
        produces=("slow_a",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="slow.b",
        name="b",
        entry=f"{__name__}:sleep_then_write",
        requires=("slow_a",),
        produces=("slow_b",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="slow.c",
        name="c",
        entry=f"{__name__}:sleep_then_write",
        requires=("slow_b",),
        produces=("slow_c",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="slow.side",
        name="independent lane",
        entry=f"{__name__}:sleep_then_write",
        produces=("slow_side",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="slow.join",
        name="joins both lanes",
        entry=f"{__name__}:sleep_then_write",
        requires=("slow_a", "slow_side"),
        produces=("slow_join",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="slow.fail",
        name="fails",
        entry=f"{__name__}:fail",
        requires=("slow_a",),
        produces=("slow_never",),
    ),
    PhaseSpec(
        id="slow.after_fail",
        name="blocked",
        entry=f"{__name__}:sleep_then_write",
        requires=("slow_never",),
        produces=("slow_blocked",),
        config_class=SleepConfig,
    ),
    PhaseSpec(
        id="secret.use",
        name="secret",
        entry=f"{__name__}:use_secret",
        produces=("secret_proof",),
        config_class=SecretConfig,
    ),
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
