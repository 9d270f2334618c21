"""Which Vast.ai machine a phase gets: the offer search, built from the phase's needs.

A search is one flat JSON object of ``field: {op: value}`` filters plus ``order``, ``type`` and
``limit`` (docs/vast.md, "Offer search"). The phase's `Resources` set the floor (GPU
count and memory, CPU cores, RAM, disk); the user's `OfferFilters` ([backends.vast] settings)
narrow it further (GPU model, CUDA version, price cap, reliability, bandwidth, region). Results
come cheapest first.

Units follow the API, not the user: ``gpu_ram`` and ``cpu_ram`` are in MB (GB times 1000, as the
official CLI converts, so a "24 GB" card that reports 24564 MB still matches 24), ``disk_space``
in GB, bandwidths in Mb/s. Numbers are sent as JSON numbers: the official client sends most of
them as strings and the server coerces either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from voltx.errors import BackendError
from voltx.spec import Resources

ON_DEMAND = "on-demand"
INTERRUPTIBLE = "bid"
MB_PER_GB = 1000
# What the official client filters on unless told not to: machines one can rent now, not
# already rented, in Vast's own marketplace.
_DEFAULT_FILTERS: dict[str, dict[str, Any]] = {
    "external": {"eq": False},
    "rentable": {"eq": True},
    "rented": {"eq": False},
}


def names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One name or several, as a tuple: ``"RTX 4090"`` and ``["RTX 4090"]`` mean the same."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"expected a name or a list of names, got {value!r}")
    return tuple(str(item) for item in value)


@attrs.frozen(kw_only=True)
class OfferFilters:
    """The user's conditions on a machine, on top of what the phase itself needs.

    `gpu_name` is one model or several (``"RTX 4090"``; underscores read as spaces, as in the
    official CLI). `max_dph` caps the total price per hour. `min_reliability` is Vast's 0-1 score.
    `filters` passes further raw filters through unchanged (``{"static_ip": {"eq": true}}``).
    The ``[backends.vast]`` settings (`VastSettings`) are these filters and more.
    """

    gpu_name: tuple[str, ...] = attrs.field(default=(), converter=names)
    num_gpus: int | None = None
    min_gpu_memory_gb: float | None = None
    min_cpu_cores: int | None = None
    min_ram_gb: float | None = None
    min_cuda: float | None = None
    max_dph: float | None = None
    min_reliability: float | None = 0.95
    verified: bool | None = True
    min_inet_down_mbps: float | None = None
    min_inet_up_mbps: float | None = None
    geolocation: tuple[str, ...] = attrs.field(default=(), converter=names)
    interruptible: bool = False
    filters: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class OfferQuery:
    """One offer search: the filters, cheapest first, at most `limit` offers."""

    filters: Mapping[str, Mapping[str, Any]]
    disk_gb: float
    interruptible: bool = False
    limit: int = 10

    @classmethod
    def build(
        cls,
        resources: Resources,
        filters: OfferFilters = OfferFilters(),
        *,
        disk_gb: float = 0.0,
        exclude_machines: Iterable[int] = (),
        limit: int = 10,
    ) -> OfferQuery:
        """The search for a machine that runs a phase needing `resources`.

        `disk_gb` is the instance's disk (image plus data, the settings' ``disk_gb``);
        `exclude_machines` leaves out machines that already failed this phase.
        """
        if filters.num_gpus is not None and filters.num_gpus < resources.gpus:
            raise BackendError(
                f"num_gpus = {filters.num_gpus} in the vast settings, but the phase needs "
                f"{resources.gpus} GPUs",
                "vast",
            )
        # Every Vast machine is a GPU machine: a CPU-only phase still rents one (the cheapest).
        num_gpus = filters.num_gpus if filters.num_gpus is not None else max(1, resources.gpus)
        disk = max(disk_gb, resources.disk_gb)
        query: dict[str, dict[str, Any]] = dict(_DEFAULT_FILTERS)
        if filters.verified is not None:
            query["verified"] = {"eq": filters.verified}
        query["num_gpus"] = {"eq": num_gpus}
        names = [name.replace("_", " ") for name in filters.gpu_name]
        if len(names) == 1:
            query["gpu_name"] = {"eq": names[0]}
        elif names:
            query["gpu_name"] = {"in": names}
        _at_least(query, "gpu_ram", resources.gpu_memory_gb, filters.min_gpu_memory_gb, MB_PER_GB)
        _at_least(query, "cpu_cores_effective", resources.cpu_cores, filters.min_cpu_cores)
        _at_least(query, "cpu_ram", resources.ram_gb, filters.min_ram_gb, MB_PER_GB)
        query["disk_space"] = {"gte": _number(disk)}
        if filters.min_cuda is not None:
            query["cuda_max_good"] = {"gte": filters.min_cuda}
        if filters.max_dph is not None:
            query["dph_total"] = {"lte": filters.max_dph}
        if filters.min_reliability is not None:
            query["reliability"] = {"gte": filters.min_reliability}
        if filters.min_inet_down_mbps is not None:
            query["inet_down"] = {"gte": filters.min_inet_down_mbps}
        if filters.min_inet_up_mbps is not None:
            query["inet_up"] = {"gte": filters.min_inet_up_mbps}
        if len(filters.geolocation) == 1:
            query["geolocation"] = {"eq": filters.geolocation[0]}
        elif filters.geolocation:
            query["geolocation"] = {"in": list(filters.geolocation)}
        excluded = sorted({int(machine) for machine in exclude_machines})
        if excluded:
            query["machine_id"] = {"notin": excluded}
        for field, condition in filters.filters.items():
            query[field] = dict(condition)
        return cls(filters=query, disk_gb=disk, interruptible=filters.interruptible, limit=limit)

    def body(self) -> dict[str, Any]:
        """The request body of ``POST /api/v0/bundles/``."""
        return {
            **{field: dict(condition) for field, condition in self.filters.items()},
            "order": [["dph_total", "asc"]],
            "type": INTERRUPTIBLE if self.interruptible else ON_DEMAND,
            "limit": self.limit,
            # The disk that prices are computed for.
            "allocated_storage": self.disk_gb,
        }

    def describe(self) -> str:
        """The filters in one line, for "no offer matches" errors."""
        return ", ".join(
            f"{field} {op} {value}"
            for field, condition in self.filters.items()
            for op, value in condition.items()
        )


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _at_least(
    query: dict[str, dict[str, Any]],
    field: str,
    needed: float,
    wanted: float | None,
    scale: int = 1,
) -> None:
    floor = max(needed, wanted or 0)
    if floor > 0:
        query[field] = {"gte": _number(floor * scale)}


@attrs.frozen
class Offer:
    """The fields of an offer voltx reads; the whole answer stays in `raw`."""

    id: int
    machine_id: int | None
    gpu_name: str
    num_gpus: int
    dph_total: float
    min_bid: float | None
    raw: Mapping[str, Any] = attrs.field(eq=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Offer:
        """An offer from the API's answer; unknown fields are kept in `raw` only."""
        try:
            offer_id = int(data["id"])
        except (KeyError, TypeError, ValueError):
            raise BackendError(f"Vast offer without an id: {dict(data)!r:.200}", "vast") from None
        machine = data.get("machine_id")
        min_bid = data.get("min_bid")
        return cls(
            id=offer_id,
            machine_id=int(machine) if machine is not None else None,
            gpu_name=str(data.get("gpu_name") or ""),
            num_gpus=int(data.get("num_gpus") or 0),
            dph_total=float(data.get("dph_total") or 0.0),
            min_bid=float(min_bid) if min_bid is not None else None,
            raw=dict(data),
        )
