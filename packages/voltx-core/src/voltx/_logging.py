"""structlog set-up and the redaction of secrets.

Secrets are removed before anything is rendered: any value under a key that names a key, secret,
token or password, and any occurrence of a value registered as secret (by default the values of
environment variables whose names say they are secret, such as ``VAST_API_KEY``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "***"
# Matched against the end of a key, so `hf_token` and `AWS_SECRET_ACCESS_KEY` are secret while an
# artifact named `ex_token_counts` or a setting named `max_tokens` is not.
SECRET_KEY_PATTERN = re.compile(
    r"(^|[_.-])(api[_-]?key|apikey|access[_-]?key|secret([_-]?key)?|token|passw(or)?d|passphrase"
    r"|credentials?|private[_-]?key|auth)$",
    re.I,
)
# A secret shorter than this would be "redacted" inside ordinary words; such values are too weak
# to be real credentials anyway.
_MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_configured = False


def is_secret_key(key: str) -> bool:
    """True when a key's name says its value is secret."""
    return bool(SECRET_KEY_PATTERN.search(key))


def add_secret(value: str) -> None:
    """Redact `value` wherever it appears from now on."""
    if len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def register_environment_secrets(extra_names: Iterable[str] = ()) -> None:
    """Treat the values of secret-named environment variables (and `extra_names`) as secrets."""
    names = set(extra_names)
    for name, value in os.environ.items():
        if name in names or is_secret_key(name):
            add_secret(value)


def register_config_secrets(config: Mapping[str, Any]) -> None:
    """Treat every string under a secret-named key of `config` (nested tables too) as a secret,
    so it is redacted wherever it shows up later: an error message, a traceback, a file."""
    for key, value in config.items():
        if isinstance(value, Mapping):
            register_config_secrets(value)
        elif isinstance(key, str) and is_secret_key(key) and isinstance(value, str):
            add_secret(value)


def redact_text(text: str) -> str:
    """`text` with every registered secret replaced."""
    # Longest first: replacing a secret that is part of a longer one would leave the rest showing.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any) -> Any:
    """A copy of plain data with secret-named keys and secret values redacted."""
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED if isinstance(key, str) and is_secret_key(key) and item else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    redacted = redact(dict(event_dict))
    assert isinstance(redacted, dict)
    return redacted


def _redact_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    # Values that are not plain data (a client object whose repr holds its token) are turned into
    # text only by the renderer, so the rendered line is searched once more.
    return redact_text(rendered) if isinstance(rendered, str) else rendered


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at each write.

    Binding the object ``sys.stderr`` held at configure time would keep writing to it after a
    test runner or an embedding application swapped it out and closed it.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, stream: Any = None, force: bool = False
) -> None:
    """Configure structlog once: console on a TTY, JSON lines otherwise.

    The library calls this only when the host application has not configured structlog itself;
    the CLI calls it with ``force=True``.
    """
    global _configured
    if _configured and not force:
        return
    register_environment_secrets()
    stream = stream or _CurrentStderr()
    if json is None:
        json = not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _configured = True


def ensure_logging() -> None:
    """Configure logging for library use unless the host application already did."""
    if not _configured and not structlog.is_configured():
        configure_logging()
    else:
        register_environment_secrets()
