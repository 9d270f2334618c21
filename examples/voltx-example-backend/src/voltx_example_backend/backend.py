"""``lowprio``: phase jobs as local subprocesses that yield the machine to everything else.

Each job runs like the ``local`` backend's (same job folder protocol, so status, logs, cancel and
re-attach work unchanged), but under ``nice`` and, where the machine has it, ``ionice -c 3``
(idle I/O), and the backend offers the scheduler one core less than the machine has, so a
workstation stays usable while a pipeline trains in the background.

    [project]
    backend = "lowprio"

    [backends.lowprio]
    niceness = 19        # 0 (normal) .. 19 (lowest)
    spare_cores = 1      # cores never offered to jobs
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import attrs

from voltx.backend import JobRequest
from voltx.spec import Resources
from voltx_backends import LocalBackend, LocalJobHandle


@attrs.frozen(kw_only=True)
class LowPrioritySettings:
    """The ``[backends.lowprio]`` table."""

    niceness: int = attrs.field(
        default=19, validator=[attrs.validators.ge(0), attrs.validators.le(19)]
    )
    spare_cores: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    idle_io: bool = True


class LowPriorityBackend(LocalBackend):
    """The local backend, with jobs at low CPU (and I/O) priority and cores kept spare."""

    name = "lowprio"

    def __init__(
        self, work_dir: Path, *, settings: LowPrioritySettings | None = None, **options: Any
    ) -> None:
        super().__init__(work_dir)
        self.settings = settings or LowPrioritySettings(**options)

    def submit(self, request: JobRequest) -> LocalJobHandle:
        prefix: list[str] = ["nice", "-n", str(self.settings.niceness)]
        if self.settings.idle_io and shutil.which("ionice"):
            prefix = ["ionice", "-c", "3", *prefix]
        # The wrapper (run.sh) stays the job's process group leader; only the command inside
        # it runs at the lower priority, so cancel and the status checks work as for `local`.
        return super().submit(attrs.evolve(request, argv=(*prefix, *request.argv)))

    def capacity(self) -> Resources:
        capacity = super().capacity()
        cores = max(1, capacity.cpu_cores - self.settings.spare_cores)
        return attrs.evolve(capacity, cpu_cores=cores)
