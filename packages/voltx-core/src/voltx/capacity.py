"""What one backend of a run has free: its GPUs by index, cores and memory in use.

The scheduler keeps one `BackendSlots` per backend a run uses: a backend's capacity is its own,
never lent to a phase routed to another (docs/concepts.md, "Routing phases to backends").
"""

from __future__ import annotations

import attrs

from voltx.backend import Backend
from voltx.spec import Resources


class BackendSlots:
    """The capacity of one backend and what the run's jobs on it hold of it now."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.capacity = backend.capacity()
        self.free_devices = list(range(self.capacity.gpus))
        self.cpu_in_use = 0
        self.ram_in_use = 0.0
        self.jobs = 0

    def fit(self, wanted: Resources) -> Resources | str:
        """The phase's resources, clamped to what the backend has; a reason if it cannot fit."""
        if wanted.gpus > self.capacity.gpus:
            return (
                f"needs {wanted.gpus} GPU(s) but backend {self.backend.name} has "
                f"{self.capacity.gpus}; use a GPU backend or the tiny profile"
            )
        # A phase asking for more cores or memory than the machine has still runs, alone.
        # Data-parallel ranks get one GPU each, or one core each on a CPU run: a phase's result
        # does not depend on its process count (docs/concepts.md, "Data parallel"), only its speed.
        ranks_fit = wanted.gpus if wanted.gpus else self.capacity.cpu_cores
        return attrs.evolve(
            wanted,
            cpu_cores=min(wanted.cpu_cores, self.capacity.cpu_cores),
            ram_gb=min(wanted.ram_gb, self.capacity.ram_gb),
            processes=max(1, min(wanted.processes, ranks_fit)),
        )

    def has_room(self, needed: Resources) -> bool:
        """Whether `needed` (as `fit` clamped it) fits beside the jobs running here now."""
        if self.jobs and (
            needed.cpu_cores + self.cpu_in_use > self.capacity.cpu_cores
            or needed.ram_gb + self.ram_in_use > self.capacity.ram_gb
        ):
            return False
        return needed.gpus <= len(self.free_devices)

    def take(self, needed: Resources) -> tuple[int, ...]:
        """Hold `needed` for a job; the GPU indices it gets."""
        devices = tuple(self.free_devices[: needed.gpus])
        del self.free_devices[: needed.gpus]
        self.hold(needed)
        return devices

    def hold(self, needed: Resources) -> None:
        """Count a job's cores and memory (a re-attached job keeps whatever devices it has)."""
        self.cpu_in_use += needed.cpu_cores
        self.ram_in_use += needed.ram_gb
        self.jobs += 1

    def release(self, resources: Resources, devices: tuple[int, ...]) -> None:
        self.cpu_in_use -= resources.cpu_cores
        self.ram_in_use -= resources.ram_gb
        self.jobs -= 1
        self.free_devices = sorted([*self.free_devices, *devices])
