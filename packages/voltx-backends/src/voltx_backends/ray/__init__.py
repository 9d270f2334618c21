"""The ``ray`` backend: phase jobs as detached actors on a running Ray cluster (docs/ray.md).

Ray itself is an optional extra (``voltx-backends[ray]``) and imported on first use only, so
this package, and the backend's registration, load without it.
"""

from voltx_backends.ray.backend import RayBackend
from voltx_backends.ray.handle import RayJobHandle
from voltx_backends.ray.settings import RaySettings

__all__ = ["RayBackend", "RayJobHandle", "RaySettings"]
