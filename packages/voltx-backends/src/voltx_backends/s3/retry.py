"""Retrying the parts of a large transfer: exponential backoff with full jitter.

botocore already retries each request (throttling, 5xx, timeouts, refused connections) and s3fs
retries a few read errors on top. What neither retries is a piece of work made of a request and
its body: a part whose upload still failed, or a range whose body broke off mid-read. s3fs then
gives up on the whole file (and aborts a multipart upload, throwing away every part sent). Here
such a piece is tried again, after a random wait between zero and an exponentially growing cap,
so that many clients that failed together do not come back together.
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

# OSError numbers s3fs gives to answers that may succeed when asked again (it translates
# botocore's ClientErrors into OSErrors): 409 conflicts of concurrent conditional writes, 500,
# 503, and connection trouble.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.EBUSY,
        errno.EAGAIN,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EREMOTEIO,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)
# Names of exception classes (botocore, aiohttp, s3fs) that mean the connection or the body
# failed, matched by name so that this module needs none of those libraries to classify.
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "HTTPClientError",
        "IncompleteReadError",
        "ResponseStreamingError",
        "ClientPayloadError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "FSTimeoutError",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True for a failure that may go away when the same request is made again."""
    # FileNotFoundError, PermissionError and FileExistsError are answers, not failures.
    if isinstance(exc, FileNotFoundError | PermissionError | FileExistsError | IsADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return any(kind.__name__ in _TRANSIENT_NAMES for kind in type(exc).__mro__)


@attrs.frozen
class Backoff:
    """How often to try, and how long to wait in between (full jitter, AWS's recommendation)."""

    attempts: int = 3
    base_s: float = 0.5
    cap_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """A random wait before try number `attempt` + 1 (`attempt` counts from 1)."""
        return random.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    policy: Backoff,
    what: str,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Await `operation()` until it succeeds, fails for good, or has used its attempts."""
    attempt = 1
    while True:
        try:
            return await operation()
        except Exception as exc:
            if attempt >= policy.attempts or not transient(exc):
                raise
            delay = policy.delay(attempt)
            # The message is botocore's or aiohttp's: endpoint, bucket, key; never credentials.
            log.warning(
                "s3 transfer failed; retrying",
                what=what,
                attempt=attempt,
                of=policy.attempts,
                delay_s=round(delay, 2),
                error=f"{type(exc).__name__}: {exc}",
            )
            await asyncio.sleep(delay)
            attempt += 1
