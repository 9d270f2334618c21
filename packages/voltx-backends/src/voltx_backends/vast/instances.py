"""A rented Vast.ai instance as voltx reads it: its state, its SSH endpoints, its cost.

The API's instance object has some sixty fields; `Instance` keeps the few voltx acts on and the
rest in `raw`. Its ``actual_status`` is ``null`` while the host schedules the container,
``loading`` while it pulls the image, then ``running``; a container that dies reads ``exited``, a
host that loses its connection ``offline`` or ``unknown``, an outbid interruptible instance
``stopped``. `Instance.condition` folds these into what voltx does about them: wait, use, or
give up on the machine.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from typing import Any

import attrs

LABEL_PREFIX = "voltx-"


class Condition(enum.Enum):
    """What an instance's state means for voltx."""

    PENDING = "pending"  # still coming up: wait
    RUNNING = "running"  # usable
    DEAD = "dead"  # will not come (back) up by itself: destroy it and rent elsewhere


# As in SkyPilot's newer provisioner: a container that exited or a host that went away while the
# instance was loading fails at once, instead of waiting out the deadline. Anything unknown
# (a state Vast adds later) counts as pending, so the deadline still bounds it.
DEAD_STATES = frozenset({"exited", "stopped", "frozen", "unknown", "offline"})
RUNNING_STATE = "running"


@attrs.frozen
class Instance:
    """The fields of a Vast instance that voltx reads; the whole answer stays in `raw`."""

    id: int
    label: str = ""
    actual_status: str | None = None
    intended_status: str | None = None
    status_msg: str = ""
    machine_id: int | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    public_ipaddr: str | None = None
    direct_ssh_port: int | None = None
    dph_total: float = 0.0
    start_date: float | None = None
    gpu_name: str = ""
    num_gpus: int = 0
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Instance:
        """An instance from the API's answer. Types are read defensively: ports come as strings,
        ``public_ipaddr`` and ``ssh_host`` sometimes with whitespace, most fields may be null."""
        machine = data.get("machine_id")
        start = data.get("start_date")
        return cls(
            id=int(data["id"]),
            label=str(data.get("label") or ""),
            actual_status=_text(data.get("actual_status")),
            intended_status=_text(data.get("intended_status")),
            status_msg=str(data.get("status_msg") or "").strip(),
            machine_id=int(machine) if machine is not None else None,
            ssh_host=_text(data.get("ssh_host")),
            ssh_port=_port(data.get("ssh_port")),
            public_ipaddr=_text(data.get("public_ipaddr")),
            direct_ssh_port=_direct_port(data.get("ports")),
            dph_total=float(data.get("dph_total") or 0.0),
            start_date=float(start) if start is not None else None,
            gpu_name=str(data.get("gpu_name") or ""),
            num_gpus=int(data.get("num_gpus") or 0),
            raw=dict(data),
        )

    @property
    def condition(self) -> Condition:
        """Whether to wait for the instance, use it, or give up on it."""
        if self.actual_status == RUNNING_STATE:
            return Condition.RUNNING
        if self.actual_status in DEAD_STATES:
            return Condition.DEAD
        return Condition.PENDING

    @property
    def state(self) -> str:
        """``actual_status`` for people: ``scheduling`` while it is still null."""
        return self.actual_status or "scheduling"

    def endpoints(self) -> list[tuple[str, int]]:
        """Where SSH may answer, best first: the machine's own address and published port
        (direct), then Vast's SSH gateway (proxy), which works where the direct port is
        firewalled but is slower and drops idle connections."""
        found: list[tuple[str, int]] = []
        if self.public_ipaddr and self.direct_ssh_port:
            found.append((self.public_ipaddr, self.direct_ssh_port))
        if self.ssh_host and self.ssh_port and (self.ssh_host, self.ssh_port) not in found:
            found.append((self.ssh_host, self.ssh_port))
        return found

    def cost_so_far(self, now: float | None = None) -> float:
        """Dollars spent since the instance started, at its current price (an estimate: Vast
        bills storage while stopped and charges bandwidth, which this leaves out)."""
        if self.start_date is None:
            return 0.0
        hours = max(0.0, ((now if now is not None else time.time()) - self.start_date) / 3600)
        return hours * self.dph_total

    @property
    def is_voltx(self) -> bool:
        """Whether voltx rented it (its label says so)."""
        return self.label.startswith(LABEL_PREFIX)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _port(value: Any) -> int | None:
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _direct_port(ports: Any) -> int | None:
    """The host port published for the container's sshd: ``ports["22/tcp"][0]["HostPort"]``,
    a string in the API, and ``ports`` itself null until the instance runs."""
    if not isinstance(ports, Mapping):
        return None
    bindings = ports.get("22/tcp")
    if not isinstance(bindings, list):
        return None
    for binding in bindings:
        if isinstance(binding, Mapping):
            port = _port(binding.get("HostPort"))
            if port is not None:
                return port
    return None
