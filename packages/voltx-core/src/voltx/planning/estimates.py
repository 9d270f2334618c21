"""How long a phase will take and what it will cost, before it runs.

A phase's hours come from, in order of trust:

1. what this phase measured before on the same kind of host and profile (kept in the store under
   ``records/estimates/``, written when a phase succeeds);
2. its work, when the spec describes it (`PhaseSpec.work`) and the profile runs on a GPU: the
   run's FLOP over the reference GPU's dense bf16 throughput (an H100 SXM, 989 TFLOP/s) at an
   assumed utilisation of 35%, a usual share for a small model that is not hand-tuned;
3. its spec: `profile_hours` for the profile, else `reference_hours` (a figure on the reference
   GPU) scaled by PROFILE_SCALE for lighter profiles.

GPU phases are divided by the host's relative speed (its GPU against the H100). Each estimate is
a range: optimistic and conservative (`reference_hours_high`, or 1.5 x). Transfer time is the
inputs and outputs over the host's bandwidth, when the phase runs on a host of its own.
docs/concepts.md ("Estimates") explains the choices.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import attrs

from voltx.backend import Quote
from voltx.config import structure
from voltx.errors import PhaseError
from voltx.remote_inputs import stored_size
from voltx.spec import PhaseSpec, TrainingWork
from voltx.store import ArtifactStore

# A tiny profile is meant to finish in seconds to minutes where the full one takes hours.
PROFILE_SCALE = {"full": 1.0, "tiny": 0.001}
_CONSERVATIVE = 1.5
_MEASURED_SPREAD = 1.2  # a measured duration still varies run to run
_KEEP_MEASUREMENTS = 10

# The GPU that `reference_hours`, work estimates and `Quote.relative_speed` are quoted against.
REFERENCE_GPU = "H100 bf16"
REFERENCE_FLOP_PER_S = 989e12  # H100 SXM, dense bf16 tensor throughput (no sparsity)
# Share of that peak a training run sustains: well-tuned large models reach 40-50%, small
# models with many optimizer steps and little fusion less; 35% is the middle of the usual range.
ASSUMED_UTILISATION = 0.35


@attrs.frozen
class PhaseEstimate:
    """Hours (optimistic, conservative), transfer hours and dollars for one phase on one host."""

    phase_id: str
    host: str
    hours: tuple[float, float]
    transfer_hours: float
    dollars: tuple[float, float]
    source: str  # "measured", "work" or "spec"
    # How a "work" estimate was reached: "2.4e15 FLOP at 35% of H100 bf16 (6 x ...)".
    basis: str = ""

    @property
    def total_hours(self) -> tuple[float, float]:
        return (self.hours[0] + self.transfer_hours, self.hours[1] + self.transfer_hours)


def _record_path(phase_id: str, profile: str, host: str) -> str:
    safe_host = "".join(c if c.isalnum() or c in "._-" else "_" for c in host)
    return f"estimates/{phase_id}/{profile}/{safe_host}.json"


def measured_hours(store: ArtifactStore, phase_id: str, profile: str, host: str) -> float | None:
    """The median of the durations this phase measured on `host` under `profile`, if any."""
    record = store.read_record(_record_path(phase_id, profile, host))
    samples = [float(s) for s in (record or {}).get("hours", [])]
    return statistics.median(samples) if samples else None


def record_measurement(
    store: ArtifactStore, phase_id: str, profile: str, host: str, hours: float
) -> None:
    """Keep a finished phase's duration for later plans (the last few runs)."""
    path = _record_path(phase_id, profile, host)
    record = store.read_record(path) or {}
    samples = [*record.get("hours", []), hours][-_KEEP_MEASUREMENTS:]
    store.write_record(
        path, {"phase": phase_id, "profile": profile, "host": host, "hours": samples}
    )


def phase_work(
    spec: PhaseSpec, profile: str, config: Mapping[str, Any] | None
) -> TrainingWork | None:
    """The run's work from its resolved `config` (plain data), when the spec describes it.

    Only a profile that runs on a GPU is timed by its work: the throughput model is a GPU's,
    and a small CPU profile spends its time on fixed costs (start-up, data loading), not FLOP.
    """
    if spec.work is None or config is None or spec.resources_for(profile).gpus == 0:
        return None
    instance = structure(spec.config_class, config, path=spec.id)
    try:
        return spec.work(instance)
    except Exception as exc:  # plugin code: say which phase's estimator broke
        raise PhaseError(spec.id, f"its work estimate failed: {type(exc).__name__}: {exc}") from exc


def work_hours(work: TrainingWork) -> float:
    """Hours of `work` on the reference GPU at the assumed utilisation."""
    return work.flop / (REFERENCE_FLOP_PER_S * ASSUMED_UTILISATION) / 3600.0


def describe_work(work: TrainingWork) -> str:
    """``2.4e15 FLOP at 35% of H100 bf16 (how it was counted)``, for plans."""
    text = f"{work.flop:.1e} FLOP at {ASSUMED_UTILISATION:.0%} of {REFERENCE_GPU}"
    return f"{text} ({work.basis})" if work.basis else text


def spec_hours(
    spec: PhaseSpec, profile: str, config: Mapping[str, Any] | None = None
) -> tuple[float, float]:
    """The spec's (optimistic, conservative) hours under `profile` on the reference GPU.

    With the resolved `config` and a spec that describes its work, a GPU profile is timed from
    that work; otherwise from `profile_hours` or `reference_hours`.
    """
    return _reference_hours(spec, profile, phase_work(spec, profile, config))


def _reference_hours(
    spec: PhaseSpec, profile: str, work: TrainingWork | None
) -> tuple[float, float]:
    if work is not None:
        hours = work_hours(work)
        return hours, hours * _CONSERVATIVE
    high = spec.reference_hours_high or spec.reference_hours * _CONSERVATIVE
    if profile in spec.profile_hours:
        hours = spec.profile_hours[profile]
        return hours, hours * _CONSERVATIVE
    scale = PROFILE_SCALE.get(profile, 1.0)
    return spec.reference_hours * scale, high * scale


def estimate_phase(
    spec: PhaseSpec,
    profile: str,
    quote: Quote,
    transfer_bytes: int,
    measured: float | None = None,
    config: Mapping[str, Any] | None = None,
) -> PhaseEstimate:
    """The estimate of one phase on the host `quote` describes.

    `config` is the phase's resolved config as plain data; it lets a spec that describes its
    work be timed from it.
    """
    basis = ""
    if measured is not None:
        hours = (measured, measured * _MEASURED_SPREAD)
        source = "measured"
    else:
        work = phase_work(spec, profile, config)
        low, high = _reference_hours(spec, profile, work)
        # Only GPU work speeds up on a faster GPU; CPU phases run at the host's CPU pace.
        speed = quote.relative_speed if spec.resources_for(profile).gpus > 0 else 1.0
        hours = (low / speed, high / speed)
        source = "spec" if work is None else "work"
        if work is not None:
            basis = describe_work(work)
            if speed != 1.0:
                basis += f"; this host's GPU at {speed:.2f} x that speed"
    transfer = 0.0
    if quote.separate_host and quote.bandwidth_mb_s > 0:
        transfer = transfer_bytes / (quote.bandwidth_mb_s * 1e6) / 3600.0
    price_low = quote.dollars_per_hour
    price_high = quote.dollars_per_hour_high or price_low
    dollars = ((hours[0] + transfer) * price_low, (hours[1] + transfer) * price_high)
    return PhaseEstimate(spec.id, quote.host, hours, transfer, dollars, source, basis)


def artifact_bytes(
    store: ArtifactStore, names: tuple[str, ...], declared: Mapping[str, float]
) -> int:
    """Bytes of the named artifacts: their size in the store (a URL input's remote size), else
    the producer's declared size."""
    total = 0
    for name in names:
        digest = store.ref(name)
        if digest is not None:
            total += stored_size(store, store.load_manifest(digest))
        else:
            total += int(declared.get(name, 0.0) * 1e9)
    return total
