"""The ``[backends.vast]`` settings: what to rent, how long to wait, and how to reach it.

    [backends.vast]
    gpu_name = ["RTX 4090", "RTX 3090"]   # any of these
    max_dph = 0.8                          # dollars per hour, all included
    min_cuda = 12.1
    image = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"
    provision_timeout_s = 1800             # renting until "running"
    # The API key comes from $VAST_API_KEY or api_key_file, never from this file.

Every key is optional. The settings are the filters on the machine (`OfferFilters`, declared
there once), which come on top of each phase's own resources, and more; the SSH keys
(`python`, `remote_root`, `bootstrap`, `plugins`, ...) mean what they mean for the ``ssh``
backend, with defaults for Vast's images (login as root, the image's own torch visible to
voltx's venv).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from voltx.errors import BackendError
from voltx_backends._settings import settings_from_options
from voltx_backends.ssh.bootstrap import DEFAULT_PACKAGES
from voltx_backends.vast.offers import OfferFilters, names

# A CUDA image with python3 and torch; voltx's venv sees its torch (system_site_packages).
DEFAULT_IMAGE = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise BackendError(f"{attribute.name} must be positive, got {value}", "vast")


def _not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise BackendError(f"{attribute.name} must not be negative, got {value}", "vast")


@attrs.frozen(kw_only=True)
class VastSettings(OfferFilters):
    """Every setting of the Vast backend: the offer filters it inherits, and the rest.

    A project file's ``[backends.vast]`` table is structured into it by voltx (the class is
    registered with the backend), so every mistake there is reported with its key path.
    """

    # -- the API ---------------------------------------------------------------------------
    # For programs that hold the key themselves; a project file should leave it out and use
    # $VAST_API_KEY or api_key_file instead, so that the key never sits in a versioned file.
    api_key: str | None = attrs.field(default=None, repr=False)
    api_key_file: str | None = None
    url: str | None = None  # default: $VAST_URL, else https://console.vast.ai
    request_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    # Minimum spacing of two requests to one endpoint, to stay under Vast's rate limits.
    request_spacing_s: float = attrs.field(default=0.2, validator=_not_negative)
    # Tries per request on 429/5xx, and the first backoff (doubling, jittered, at most 30 s).
    request_attempts: int = attrs.field(default=6, validator=_positive)
    retry_backoff_s: float = attrs.field(default=0.5, validator=_positive)

    # -- what to rent ----------------------------------------------------------------------
    image: str = DEFAULT_IMAGE
    disk_gb: float = attrs.field(default=32.0, validator=_positive)
    env: Mapping[str, str] = attrs.field(factory=dict)
    onstart: str = ""  # appended to voltx's own onstart script
    offer_limit: int = attrs.field(default=10, validator=_positive)
    # The scheduler's GPU budget: at most this many GPUs rented at once over all phases.
    max_gpus: int = attrs.field(default=8, validator=_positive)

    # -- waiting ---------------------------------------------------------------------------
    # From the first rental until an instance runs, replacements included; then SSH must answer
    # within ssh_timeout_s. Past either deadline the instance is destroyed and the job fails.
    provision_timeout_s: float = attrs.field(default=1800.0, validator=_positive)
    ssh_timeout_s: float = attrs.field(default=600.0, validator=_positive)
    poll_s: float = attrs.field(default=5.0, validator=_positive)
    # How many times an instance that dies while loading is replaced on another machine.
    max_replacements: int = attrs.field(default=3, validator=_not_negative)
    # A job's status is read over SSH at most this often; the scheduler polls far more often.
    status_interval_s: float = attrs.field(default=1.0, validator=_not_negative)
    # How often a running job's instance is checked with the API even while SSH answers.
    instance_check_s: float = attrs.field(default=60.0, validator=_positive)

    # -- the machine pool (docs/vast.md, "Machine pool") ---------------------------------
    # On (the default): jobs share and reuse machines. Off: one instance per job, destroyed
    # when it ends.
    pool: bool = True
    # How long a pooled machine with nothing to run is kept for the next job that fits it.
    pool_idle_s: float = attrs.field(default=120.0, validator=_not_negative)
    # How long the first job of a new machine waits before renting it, so that the phases the
    # scheduler starts together can be packed onto one offer.
    pool_gather_s: float = attrs.field(default=1.0, validator=_not_negative)
    # Cap a CPU-only job's address space at its RAM share. Off by default: torch and CUDA
    # reserve far more address space than they use.
    pin_memory: bool = False
    # What a plan counts per machine for its boot, bootstrap and uploads (billed, no phase runs).
    pool_prep_s: float = attrs.field(default=600.0, validator=_not_negative)

    # -- reaching the instance (as for the ssh backend) -----------------------------------
    ssh_user: str = "root"
    python: str = "python3"
    remote_root: str = "~/.voltx"
    bootstrap: bool = True
    packages: tuple[str, ...] = attrs.field(default=DEFAULT_PACKAGES, converter=names)
    plugins: tuple[str, ...] = attrs.field(default=(), converter=names)
    system_site_packages: bool = True
    pip_args: tuple[str, ...] = attrs.field(default=(), converter=names)
    forward_env: tuple[str, ...] = attrs.field(default=(), converter=names)
    transfer: str = "auto"
    connect_timeout_s: int = attrs.field(default=10, validator=_positive)
    unreachable_timeout_s: float = attrs.field(default=300.0, validator=_positive)
    # With a folder store, a job's new checkpoints come back here at most this often (seconds).
    checkpoint_pull_s: float = attrs.field(default=30.0, validator=_positive)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> VastSettings:
        """Settings from the project file's table; an unknown key is an error that says so."""
        return settings_from_options(cls, options, "vast")

    def offer_filters(self) -> OfferFilters:
        """The user's conditions on the machine (the settings are those filters, and more)."""
        return self
