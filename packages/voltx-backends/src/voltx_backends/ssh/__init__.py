"""The ``ssh`` backend: phase jobs on any machine reached over SSH.

`SSHBackend` runs jobs under the job-folder protocol on the host, `SSHPoolBackend` on one of
several hosts (`ssh_backend` makes the one the settings ask for); `SSHTransport` is the OpenSSH
client underneath (shared connection, transfers), which other remote backends build on.
"""

from voltx_backends.ssh.backend import SSHBackend
from voltx_backends.ssh.bootstrap import BootstrapError
from voltx_backends.ssh.handle import SSHJobHandle
from voltx_backends.ssh.pool import SSHPoolBackend, ssh_backend
from voltx_backends.ssh.pool_handle import SSHPoolJobHandle
from voltx_backends.ssh.settings import SSHHostEntry, SSHSettings
from voltx_backends.ssh.target import (
    AuthenticationError,
    HostKeyError,
    SSHTarget,
    TransportError,
)
from voltx_backends.ssh.transport import SSHTransport

__all__ = [
    "AuthenticationError",
    "BootstrapError",
    "HostKeyError",
    "SSHBackend",
    "SSHHostEntry",
    "SSHJobHandle",
    "SSHPoolBackend",
    "SSHPoolJobHandle",
    "SSHSettings",
    "SSHTarget",
    "SSHTransport",
    "TransportError",
    "ssh_backend",
]
