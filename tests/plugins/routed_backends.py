"""A test plugin: a second local backend, ``alt``, so one run can route phases to two backends.

``alt`` runs jobs as the local backend does, at the price of ``[backends.alt]
dollars_per_hour`` (as the ``priced`` plugin's backend), under its own name: the ledger and the
budget tell its jobs from the ``local`` or ``priced`` backend's. Loaded with
``VOLTX_PLUGINS=routed_backends`` and this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from priced_backend import Priced

import voltx
from voltx.backend import Quote
from voltx.hookspecs import RegisterBackend
from voltx_backends.local import LocalBackend


class AltBackend(Priced):
    """Local jobs under the name ``alt``, quoted at their price (so plans price them)."""

    name = "alt"

    def quote(self, resources: voltx.Resources) -> Quote:
        return Quote(host="alt", dollars_per_hour=self.dollars_per_hour)


def alt_local(work_dir: Path, dollars_per_hour: float = 0.0, **options: Any) -> AltBackend:
    return AltBackend(LocalBackend(work_dir=work_dir, **options), dollars_per_hour)


@voltx.hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("alt", alt_local)
