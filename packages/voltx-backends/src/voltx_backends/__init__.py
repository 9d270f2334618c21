"""voltx's own backends: where phase jobs run.

voltx finds them through the ``voltx`` entry-point group (see `voltx_backends.plugin`), as it finds
any third-party backend; nothing in voltx imports this package.
"""

from voltx_backends.local import LocalBackend, LocalJobHandle

__all__ = ["LocalBackend", "LocalJobHandle"]
