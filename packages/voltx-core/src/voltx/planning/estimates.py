"""How long a phase will take and what it will cost, before it runs.

A phase's hours come from, in order of trust:

1. what this phase measured before on the same kind of host and profile (kept in the store under
   ``records/estimates/``, written when a phase succeeds);
2. its spec: `profile_hours` for the profile, else `reference_hours` (the runbooks' figure on
   the reference GPU, an H100) scaled by PROFILE_SCALE for lighter profiles.

GPU phases are divided by the host's relative speed. Each estimate is a range: optimistic and
conservative (`reference_hours_high`, or 1.5 x). Transfer time is the inputs and outputs over
the host's bandwidth, when the phase runs on a host of its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import attrs

from voltx.backend import Quote
from voltx.spec import PhaseSpec
from voltx.store import ArtifactStore

# A tiny profile is meant to finish in seconds to minutes where the full one takes hours.
PROFILE_SCALE = {"full": 1.0, "tiny": 0.001}
_CONSERVATIVE = 1.5
_MEASURED_SPREAD = 1.2  # a measured duration still varies run to run
_KEEP_MEASUREMENTS = 10


@attrs.frozen
class PhaseEstimate:
    """Hours (optimistic, conservative), transfer hours and dollars for one phase on one host."""

    phase_id: str
    host: str
    hours: tuple[float, float]
    transfer_hours: float
    dollars: tuple[float, float]
    source: str  # "measured" or "spec"

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


def spec_hours(spec: PhaseSpec, profile: str) -> tuple[float, float]:
    """The spec's (optimistic, conservative) hours under `profile` on the reference GPU."""
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
) -> PhaseEstimate:
    """The estimate of one phase on the host `quote` describes."""
    if measured is not None:
        hours = (measured, measured * _MEASURED_SPREAD)
        source = "measured"
    else:
        low, high = spec_hours(spec, profile)
        # Only GPU work speeds up on a faster GPU; CPU phases run at the host's CPU pace.
        speed = quote.relative_speed if spec.resources_for(profile).gpus > 0 else 1.0
        hours = (low / speed, high / speed)
        source = "spec"
    transfer = 0.0
    if quote.separate_host and quote.bandwidth_mb_s > 0:
        transfer = transfer_bytes / (quote.bandwidth_mb_s * 1e6) / 3600.0
    price_low = quote.dollars_per_hour
    price_high = quote.dollars_per_hour_high or price_low
    dollars = ((hours[0] + transfer) * price_low, (hours[1] + transfer) * price_high)
    return PhaseEstimate(spec.id, quote.host, hours, transfer, dollars, source)


def artifact_bytes(
    store: ArtifactStore, names: tuple[str, ...], declared: Mapping[str, float]
) -> int:
    """Bytes of the named artifacts: their size in the store, else the producer's declared size."""
    total = 0
    for name in names:
        digest = store.ref(name)
        if digest is not None:
            total += store.load_manifest(digest).size
        else:
            total += int(declared.get(name, 0.0) * 1e9)
    return total
