"""A test plugin: the local backend with a price, so budgets can be tested without renting.

``[backends.priced] dollars_per_hour = 3600`` makes every job cost a dollar a second. Loaded
with ``VOLTX_PLUGINS=priced_backend`` and this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import voltx
from voltx.backend import Backend, JobHandle, JobRequest, JobStatus
from voltx.hookspecs import RegisterBackend
from voltx_backends.local import LocalBackend


class PricedHandle(JobHandle):
    """Another backend's job, costing `dollars_per_hour` while it runs."""

    def __init__(self, inner: JobHandle, dollars_per_hour: float) -> None:
        self.inner = inner
        self.job_id = inner.job_id
        self.dollars_per_hour = dollars_per_hour

    @property
    def ref(self) -> dict[str, Any]:
        return self.inner.ref

    def status(self) -> JobStatus:
        return self.inner.status()

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        return self.inner.read_log(offset)

    def read_file(self, name: str) -> bytes | None:
        return self.inner.read_file(name)

    def cancel(self, grace_s: float = 10.0) -> None:
        self.cancelled_with = grace_s
        self.inner.cancel(grace_s)

    @property
    def price_per_hour(self) -> float:
        return self.dollars_per_hour


class Priced(Backend):
    """Wraps `inner` so that each of its jobs costs `dollars_per_hour`."""

    name = "priced"

    def __init__(self, inner: Backend, dollars_per_hour: float) -> None:
        self.inner = inner
        self.dollars_per_hour = dollars_per_hour
        self.handles: list[PricedHandle] = []

    def submit(self, request: JobRequest) -> JobHandle:
        handle = PricedHandle(self.inner.submit(request), self.dollars_per_hour)
        self.handles.append(handle)
        return handle

    def attach(self, ref: Mapping[str, Any]) -> JobHandle:
        return PricedHandle(self.inner.attach(ref), self.dollars_per_hour)

    @property
    def python(self) -> str:
        return self.inner.python

    @property
    def runs_in_process(self) -> bool:
        return self.inner.runs_in_process

    def capacity(self) -> voltx.Resources:
        return self.inner.capacity()

    def close(self) -> None:
        self.inner.close()


def priced_local(work_dir: Path, dollars_per_hour: float = 0.0, **options: Any) -> Priced:
    """The ``priced`` backend: local jobs at a price."""
    return Priced(LocalBackend(work_dir=work_dir, **options), dollars_per_hour)


@voltx.hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("priced", priced_local)
