"""The ``vast`` backend: phase jobs on GPU instances rented from Vast.ai for the job.

`VastBackend` rents (or adopts) one instance per job and runs the job there with the ``ssh``
backend; `VastClient` is the small REST client underneath, `OfferQuery` the offer search built
from a phase's resources and the user's filters.
"""

from voltx_backends.vast.backend import VastBackend
from voltx_backends.vast.client import (
    OfferUnavailableError,
    RetryPolicy,
    VastAPIError,
    VastClient,
    load_api_key,
)
from voltx_backends.vast.handle import VastJobHandle
from voltx_backends.vast.instances import Condition, Instance
from voltx_backends.vast.offers import Offer, OfferFilters, OfferQuery
from voltx_backends.vast.settings import VastSettings

__all__ = [
    "Condition",
    "Instance",
    "Offer",
    "OfferFilters",
    "OfferQuery",
    "OfferUnavailableError",
    "RetryPolicy",
    "VastAPIError",
    "VastBackend",
    "VastClient",
    "VastJobHandle",
    "VastSettings",
    "load_api_key",
]
