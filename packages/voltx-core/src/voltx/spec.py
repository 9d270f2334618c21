"""The phase contract: what a phase declares (`PhaseSpec`) and how it runs (`Phase`).

Planning reads only `PhaseSpec` data. The code that trains is named by `entry`, a
``"module:attribute"`` string that only the worker imports, so planning a pipeline never imports
torch.
"""

from __future__ import annotations

import abc
import importlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from voltx.errors import ConfigError, PhaseError, did_you_mean

if TYPE_CHECKING:
    from voltx.context import PhaseContext

PHASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _at_least_one(_instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _accelerator_name(_instance: Any, attribute: attrs.Attribute[str | None], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip() or " " in value):
        raise ValueError(
            f"{attribute.name} must be a GPU model's name without spaces, such as 'H100' or "
            f"'A10G', got {value!r}"
        )


@attrs.frozen
class Resources:
    """What one run of a phase needs from its host.

    `processes` > 1 asks for data parallelism on one host: the worker launches the phase's entry
    that many times under ``torchrun``, one process per GPU (or per CPU core for a CPU run); see
    `voltx.data_parallel`. The scheduler clamps it to what the backend has (GPUs given, or cores),
    so a phase written for N processes must give the same result with fewer.

    `accelerator` names the GPU model a phase needs (Ray's names: ``"H100"``, ``"A100"``,
    ``"A10G"``), where it needs one: the ray backend asks for Ray's ``accelerator_type:<name>``
    resource, which a node with such GPUs has (docs/ray.md). The other backends choose GPU
    models by their own settings (Vast's ``gpu_name``) and take hosts as they are.
    """

    gpus: int = 0
    gpu_memory_gb: float = 0.0
    cpu_cores: int = 1
    ram_gb: float = 1.0
    disk_gb: float = 1.0
    processes: int = attrs.field(default=1, validator=_at_least_one)
    accelerator: str | None = attrs.field(default=None, validator=_accelerator_name)


@attrs.frozen
class TrainingWork:
    """The arithmetic one run of a training phase does, so a plan can time it before it runs.

    `flop` is the total of floating-point operations, forward and backward, over the whole run;
    `basis` says in a few words how it was counted (``6 x 51.7M parameters x 7.8M slot rows``),
    and is printed by ``voltx plan``. The plan turns it into hours on the reference GPU at an
    assumed utilisation (`voltx.planning.estimates`); see docs/concepts.md, "Estimates".
    """

    flop: float = attrs.field()
    basis: str = ""

    @flop.validator
    def _check_flop(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if not value >= 0:
            raise ValueError(f"work must be a non-negative number of FLOP, got {value!r}")


# The work of a phase as a function of its resolved config (an instance of `config_class`).
# Torch-free like the rest of a spec: planning calls it without importing the phase's code.
WorkEstimator = Callable[[Any], TrainingWork]


@attrs.frozen
class EmptyConfig:
    """The config of a phase that has no settings."""


class Phase(abc.ABC):
    """Base class for a phase written as a class; `run` does the work.

    A phase can also be a plain function ``def run(ctx): ...``; `entry` names either.
    """

    @abc.abstractmethod
    def run(self, ctx: PhaseContext) -> None:
        """Read `ctx.inputs`, write every artifact of `ctx.outputs`."""


PhaseEntry = Callable[["PhaseContext"], None]


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen
class PhaseSpec:
    """Everything voltx knows about a phase without running it.

    `profiles` maps a profile name (at least ``tiny`` and ``full`` for real phases) to a config
    instance; the config class's defaults are used for a profile not listed.
    `optional` names inputs the phase uses when present (never produced by another phase).
    `version` is the phase's code version: bump it when a change to the code should invalidate
    earlier outputs (it is part of the fingerprint).
    `work` (optional) computes a `TrainingWork` from the resolved config: plans estimate a GPU
    run from it rather than from `reference_hours`.
    """

    id: str = attrs.field()
    name: str
    entry: str | PhaseEntry = attrs.field(eq=False)
    family: str = "misc"
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    # Artifacts used when the store holds them (user files such as a raw dataset); their digests
    # count in the fingerprint when present, and their absence is not an error.
    optional: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    produces: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    config_class: type = attrs.field(default=EmptyConfig)
    profiles: Mapping[str, Any] = attrs.field(factory=dict)
    resources: Resources = Resources()
    profile_resources: Mapping[str, Resources] = attrs.field(factory=dict)
    reference_hours: float = 0.0
    # The conservative end of the estimate when it is a range (100-200 h); the optimistic end
    # is `reference_hours`. Default: 1.5 x reference_hours.
    reference_hours_high: float | None = None
    # Hours of a run under each profile (on the reference GPU), where it differs from the
    # full-profile estimate; profiles not listed scale by PROFILE_SCALE.
    profile_hours: Mapping[str, float] = attrs.field(factory=dict)
    # The run's arithmetic, from its config; when given, a plan times a GPU profile from it
    # instead of `reference_hours`. Measured durations still win once there are some.
    work: WorkEstimator | None = attrs.field(default=None, eq=False)
    # Size of everything the phase writes, at the full profile, for transfer-time estimates.
    output_gb: float = 0.0
    description: str = ""
    version: str = "1"

    @id.validator
    def _check_id(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if not PHASE_ID_PATTERN.match(value):
            raise ValueError(f"phase id {value!r} must be letters, digits, '.', '_' or '-'")

    @config_class.validator
    def _check_config_class(self, _attribute: attrs.Attribute[type], value: type) -> None:
        if not attrs.has(value):
            raise TypeError(f"phase {self.id}: config_class must be an attrs class")

    def default_config(self, profile: str | None) -> Any:
        """The config instance of `profile`, or the class defaults when no profile is asked for
        or the phase has none (it has no settings to size).

        An unknown name is an error: falling back to the defaults (often the full size) turned a
        typo such as ``--profile tnyi`` into a run of days.
        """
        if not profile or not self.profiles:
            return self.config_class()
        if profile not in self.profiles:
            raise ConfigError(
                [
                    f"unknown profile {profile!r} for phase {self.id}"
                    f"{did_you_mean(profile, self.profiles)}"
                ]
            )
        return self.profiles[profile]

    def resources_for(self, profile: str | None) -> Resources:
        """The resources the phase needs under `profile`."""
        if profile and profile in self.profile_resources:
            return self.profile_resources[profile]
        return self.resources


def resolve_entry(spec: PhaseSpec) -> PhaseEntry:
    """Import the phase's code and return a callable taking the context."""
    entry = spec.entry
    if callable(entry):
        return entry
    module_name, _, attribute = entry.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ["run"]:
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise PhaseError(spec.id, f"cannot load entry {entry!r}: {exc}") from exc
    if isinstance(target, type) and issubclass(target, Phase):
        return target().run
    if not callable(target):
        raise PhaseError(spec.id, f"entry {entry!r} is not callable")
    return target  # type: ignore[no-any-return]
