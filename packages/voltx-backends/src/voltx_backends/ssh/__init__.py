"""The ``ssh`` backend: phase jobs on any machine reached over SSH.

`SSHBackend` runs jobs under the job-folder protocol on the host; `SSHTransport` is the OpenSSH
client underneath (shared connection, transfers), which other remote backends build on.
"""

from voltx_backends.ssh.backend import SSHBackend
from voltx_backends.ssh.bootstrap import BootstrapError
from voltx_backends.ssh.handle import SSHJobHandle
from voltx_backends.ssh.settings import SSHSettings
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
    "SSHJobHandle",
    "SSHSettings",
    "SSHTarget",
    "SSHTransport",
    "TransportError",
]
