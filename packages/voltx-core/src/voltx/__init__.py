"""voltx: run the Volt X training pipeline as a graph of phases, anywhere.

import voltx
result = voltx.run("2.1", backend="local")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from voltx.backend import Backend, JobHandle, JobRequest, JobState, JobStatus
from voltx.checkpoints import Checkpoint, CheckpointManager
from voltx.context import PhaseContext
from voltx.errors import (
    ArtifactFormatError,
    ArtifactNotFoundError,
    BackendError,
    ConfigError,
    GenerationError,
    GraphError,
    InvalidArtifactNameError,
    MissingArtifactError,
    PhaseError,
    PhaseStopped,
    PluginError,
    RunLeaseError,
    StoreError,
    UnknownPhaseError,
    VoltxError,
)
from voltx.hookspecs import hookimpl
from voltx.spec import EmptyConfig, Phase, PhaseSpec, Resources, TrainingWork

if TYPE_CHECKING:
    from voltx.api import phases, plan, preflight, run, status
    from voltx.generate_code import generate
    from voltx.generation import (
        ConfidenceSignals,
        GeneratedSample,
        GenerationRequest,
        GeneratorSpec,
        HardCoreReport,
        ProblemSamples,
    )
    from voltx.session import SessionOptions
    from voltx.store import ArtifactStore


_GENERATION_NAMES = (
    "ConfidenceSignals",
    "GeneratedSample",
    "GenerationRequest",
    "GeneratorSpec",
    "HardCoreReport",
    "ProblemSamples",
)


def __getattr__(name: str) -> Any:
    # The API pulls in the scheduler and plugins; load it on first use so `import voltx` stays
    # cheap for plugins that only need PhaseSpec and hookimpl.
    if name in ("run", "plan", "preflight", "phases", "status"):
        from voltx import api

        return getattr(api, name)
    if name == "generate":
        from voltx.generate_code import generate

        return generate
    if name in _GENERATION_NAMES:
        from voltx import generation

        return getattr(generation, name)
    if name == "SessionOptions":
        from voltx.session import SessionOptions

        return SessionOptions
    if name == "ArtifactStore":
        from voltx.store import ArtifactStore

        return ArtifactStore
    raise AttributeError(f"module 'voltx' has no attribute {name!r}")


__all__ = [
    "ArtifactFormatError",
    "ArtifactNotFoundError",
    "ArtifactStore",
    "Backend",
    "BackendError",
    "Checkpoint",
    "CheckpointManager",
    "ConfidenceSignals",
    "ConfigError",
    "EmptyConfig",
    "GeneratedSample",
    "GenerationError",
    "GenerationRequest",
    "GeneratorSpec",
    "GraphError",
    "HardCoreReport",
    "InvalidArtifactNameError",
    "JobHandle",
    "JobRequest",
    "JobState",
    "JobStatus",
    "MissingArtifactError",
    "Phase",
    "PhaseContext",
    "PhaseError",
    "PhaseSpec",
    "PhaseStopped",
    "PluginError",
    "ProblemSamples",
    "Resources",
    "RunLeaseError",
    "SessionOptions",
    "StoreError",
    "TrainingWork",
    "UnknownPhaseError",
    "VoltxError",
    "__version__",
    "generate",
    "hookimpl",
    "phases",
    "plan",
    "preflight",
    "run",
    "status",
]
