"""A small client of our own for the Vast.ai REST API.

Why not the official SDK: it pulls in a dozen heavy dependencies and prints to stdout. Vast's API is
a handful of JSON endpoints (docs/vast.md, "The REST API voltx uses"), so the standard library is
enough:

- **Auth** is the ``Authorization: Bearer`` header and nothing else. The key never goes into a URL
  (where proxies and server logs keep it), a command line or a log: it is registered as a secret
  for redaction, and our own error messages are scrubbed of it.
- **Retries.** 429 (rate limited; Vast sends no ``Retry-After``) and 502/503/504 are retried with
  exponential backoff and jitter, so several orchestrators backing off at once do not retry in
  step. A request that changes something (renting) is retried only when it surely did nothing:
  on 429 and on a refused connection. After a 5xx or a timeout the rental may have happened, and
  the caller looks for it by label before trying again rather than renting twice.
- **Spacing.** Vast counts requests per endpoint and caller; the client keeps a small minimum
  interval between two requests to the same endpoint, so a polling loop stays under the limit.
- **Errors** come as JSON (``error``, ``msg`` or ``message``, not always all of them) or as plain
  text (``API requests too frequent``); both become a `VastAPIError` with the status and the code.

    client = VastClient(load_api_key())
    offers = client.search_offers(query)
    instance_id = client.create_instance(offers[0].id, body)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.errors import BackendError
from voltx.secrets import add_secret, redact_text
from voltx_backends.vast.instances import Instance
from voltx_backends.vast.offers import Offer, OfferQuery

log = structlog.get_logger(__name__)

DEFAULT_URL = "https://console.vast.ai"
URL_ENV = "VAST_URL"
API_KEY_ENV = "VAST_API_KEY"
# Where the official CLI (`vastai set api-key`) keeps the key.
DEFAULT_KEY_FILE = "~/.config/vastai/vast_api_key"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT_S = 30.0
# The instances list returns at most this many per page.
PAGE_LIMIT = 25
_API_PREFIX = re.compile(r"^/api/v\d+/")
# For spacing: /api/v0/instances/1234/ and /api/v0/instances/99/ count as one endpoint.
_NUMBER_SEGMENT = re.compile(r"/\d+(?=/)")


class VastAPIError(BackendError):
    """Vast's API refused a request or could not be reached.

    `status` is the HTTP status (None when no answer came: a refused connection, a timeout),
    `code` Vast's error code when it sent one (``no_such_ask``, ``auth_error``).
    """

    def __init__(
        self, message: str, *, status: int | None, code: str | None, method: str, path: str
    ) -> None:
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        super().__init__(message, "vast")

    @property
    def may_have_happened(self) -> bool:
        """Whether the server may have done what was asked although the call failed."""
        return self.status is None or self.status >= 500


class OfferUnavailableError(VastAPIError):
    """The offer was rented by someone else or withdrawn since the search (404/410 on rent)."""


@attrs.frozen
class RetryPolicy:
    """How often and how patiently a request is tried again.

    The delay before retry ``n`` (from 0) is ``min(max_s, first_s * factor**n)`` times a random
    factor in [0.5, 1]: exponential, bounded, and jittered so that clients do not retry in step.
    """

    attempts: int = 6
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        base = min(self.max_s, self.first_s * self.factor**retry)
        return base * (rng or random).uniform(0.5, 1.0)


def load_api_key(api_key: str | None = None, key_file: str | Path | None = None) -> str:
    """The API key: `api_key`, else ``$VAST_API_KEY``, else `key_file` (default: the CLI's file).

    The key is registered as a secret, so that it is redacted wherever voltx logs or reports.
    """
    key = api_key or os.environ.get(API_KEY_ENV, "").strip()
    source = "the api_key setting" if api_key else f"${API_KEY_ENV}"
    if not key:
        path = Path(key_file or DEFAULT_KEY_FILE).expanduser()
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            raise BackendError(
                f"no Vast.ai API key: set {API_KEY_ENV}, or put the key in {path} "
                "(`vastai set api-key` writes it there), or name a file with api_key_file",
                "vast",
            ) from None
        except OSError as exc:
            raise BackendError(f"cannot read the Vast.ai API key from {path}: {exc}") from exc
        source = str(path)
    if not key or any(c.isspace() for c in key):
        raise BackendError(f"the Vast.ai API key from {source} is empty or malformed", "vast")
    add_secret(key)
    return key


def api_url(path: str) -> str:
    """`path` as the API wants it: under ``/api/v0`` unless versioned, with a trailing slash."""
    if not path.startswith("/"):
        path = "/" + path
    if not _API_PREFIX.match(path):
        path = "/api/v0" + path
    return path if path.endswith("/") else path + "/"


def encode_query(query: Mapping[str, Any]) -> str:
    """Query arguments as the official client sends them: JSON-encoded values, plus-quoted.

    A string goes as it is; everything else (numbers, lists, filter objects) as JSON.
    """
    parts = []
    for name, value in query.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{urllib.parse.quote_plus(name)}={urllib.parse.quote_plus(text)}")
    return "&".join(parts)


def error_details(body: bytes) -> tuple[str | None, str]:
    """Vast's error code and message from an error body, JSON or plain text."""
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return None, text[:500]
    if not isinstance(data, dict):
        return None, text[:500]
    code = data.get("error")
    message = data.get("msg") or data.get("message") or data.get("error") or text
    return (str(code) if code else None), str(message)[:500]


class VastClient:
    """Calls Vast's REST API; thread-safe (each request opens its own connection)."""

    def __init__(
        self,
        api_key: str,
        *,
        url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        min_interval_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise BackendError("VastClient needs an API key", "vast")
        add_secret(api_key)
        self._key = api_key
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.timeout_s = timeout_s
        self.retry = retry
        self.min_interval_s = min_interval_s
        self._sleep = sleep
        self._rng = random.Random()
        self._spacing_lock = threading.Lock()
        self._last_call: dict[str, float] = {}

    def __repr__(self) -> str:
        # Never the key: a repr ends up in tracebacks and debug logs.
        return f"VastClient({self.url!r})"

    # -- the endpoints voltx uses ---------------------------------------------------------

    def search_offers(self, query: OfferQuery) -> list[Offer]:
        """Offers matching `query`, in the order the server returns them (cheapest first)."""
        data = self.request("POST", "/bundles/", body=query.body())
        offers = data.get("offers") if isinstance(data, dict) else None
        if not isinstance(offers, list):
            raise self._unexpected("POST", "/bundles/", data)
        return [Offer.from_api(item) for item in offers if isinstance(item, dict)]

    def create_instance(self, offer_id: int, body: Mapping[str, Any]) -> int:
        """Rent offer `offer_id`; returns the new instance's id.

        Raises `OfferUnavailableError` when the offer is gone. Retried only where the server
        surely did nothing (see the module docstring).
        """
        path = f"/asks/{int(offer_id)}/"
        try:
            data = self.request("PUT", path, body=body, idempotent=False)
        except VastAPIError as exc:
            if exc.status in (404, 410) or exc.code == "no_such_ask":
                raise OfferUnavailableError(
                    str(exc), status=exc.status, code=exc.code, method="PUT", path=path
                ) from None
            raise
        instance_id = data.get("new_contract") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("success") is False or instance_id is None:
            raise self._unexpected("PUT", path, data)
        return int(instance_id)

    def show_instance(self, instance_id: int) -> Instance | None:
        """One instance, or None when it is unknown or destroyed."""
        path = f"/instances/{int(instance_id)}/"
        try:
            data = self.request("GET", path, query={"owner": "me"})
        except VastAPIError as exc:
            if exc.status == 404:
                return None
            raise
        # The quirk of this endpoint: a plural key holding one object (or null).
        item = data.get("instances") if isinstance(data, dict) else None
        if isinstance(item, list):
            item = item[0] if item else None
        return Instance.from_api(item) if isinstance(item, dict) else None

    def list_instances(self) -> list[Instance]:
        """Every instance of the account, all pages."""
        found: list[Instance] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE_LIMIT}
            if token:
                query["after_token"] = token
            data = self.request("GET", "/api/v1/instances/", query=query)
            items = data.get("instances") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise self._unexpected("GET", "/api/v1/instances/", data)
            found.extend(Instance.from_api(item) for item in items if isinstance(item, dict))
            token = data.get("next_token") or None
            if not token or not items:
                return found

    def destroy_instance(self, instance_id: int) -> bool:
        """Destroy an instance; False when it was already gone. Safe to call twice."""
        path = f"/instances/{int(instance_id)}/"
        try:
            data = self.request("DELETE", path, body={})
        except VastAPIError as exc:
            if exc.status == 404:
                return False
            raise
        if isinstance(data, dict) and data.get("success") is False:
            raise self._unexpected("DELETE", path, data)
        return True

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """Add a public key to a running instance's authorized keys."""
        self.request("POST", f"/instances/{int(instance_id)}/ssh/", body={"ssh_key": public_key})

    # -- the transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one API request (with retries) and return its decoded JSON answer."""
        path = api_url(path)
        url = self.url + path + (f"?{encode_query(query)}" if query else "")
        # POST, PUT and DELETE always carry a body, at least {} (as the official client sends).
        data = None if method == "GET" else json.dumps(dict(body or {})).encode()
        attempts = max(1, self.retry.attempts)
        for attempt in range(attempts):
            self._space(method, path)
            last = attempt == attempts - 1
            try:
                status, payload = self._send(method, url, data)
            except (OSError, http.client.HTTPException) as exc:
                refused = isinstance(_root_cause(exc), ConnectionRefusedError)
                if last or not (idempotent or refused):
                    raise VastAPIError(
                        self._scrub(f"Vast API {method} {path}: no answer from {self.url}: {exc}"),
                        status=None,
                        code=None,
                        method=method,
                        path=path,
                    ) from None
                self._wait(attempt, method, path, f"{type(exc).__name__}: {exc}")
                continue
            if status < 400:
                return self._decode(method, path, payload)
            retryable = status == 429 or (idempotent and status in RETRY_STATUSES)
            if retryable and not last:
                self._wait(attempt, method, path, f"HTTP {status}")
                continue
            code, message = error_details(payload)
            raise VastAPIError(
                self._scrub(f"Vast API {method} {path} failed: HTTP {status}: {message}"),
                status=status,
                code=code,
                method=method,
                path=path,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method: str, url: str, data: bytes | None) -> tuple[int, bytes]:
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Accept": "application/json",
            "User-Agent": "voltx",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), bytes(error.read())

    def _decode(self, method: str, path: str, payload: bytes) -> Any:
        if not payload.strip():
            return {}
        try:
            return json.loads(payload)
        except ValueError:
            raise VastAPIError(
                self._scrub(f"Vast API {method} {path}: answer is not JSON: {payload[:200]!r}"),
                status=200,
                code=None,
                method=method,
                path=path,
            ) from None

    def _wait(self, attempt: int, method: str, path: str, why: str) -> None:
        delay = self.retry.delay(attempt, self._rng)
        log.debug("vast request retried", method=method, path=path, why=why, delay_s=delay)
        self._sleep(delay)

    def _space(self, method: str, path: str) -> None:
        """Keep `min_interval_s` between two requests to the same endpoint."""
        if self.min_interval_s <= 0:
            return
        endpoint = method + " " + _NUMBER_SEGMENT.sub("/{id}", path)
        with self._spacing_lock:
            now = time.monotonic()
            wait = self._last_call.get(endpoint, 0.0) + self.min_interval_s - now
            self._last_call[endpoint] = now + max(0.0, wait)
        if wait > 0:
            self._sleep(wait)

    def _unexpected(self, method: str, path: str, data: Any) -> VastAPIError:
        text = json.dumps(data)[:300] if not isinstance(data, bytes) else repr(data[:300])
        code, message = (
            (str(data.get("error")) if data.get("error") else None, str(data.get("msg") or text))
            if isinstance(data, dict)
            else (None, text)
        )
        return VastAPIError(
            self._scrub(f"Vast API {method} {api_url(path)}: unexpected answer: {message}"),
            status=200,
            code=code,
            method=method,
            path=api_url(path),
        )

    def _scrub(self, message: str) -> str:
        # A server or proxy may echo the request back; the key must not travel on in an error.
        return redact_text(message.replace(self._key, "***"))


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost reason of a urllib error (URLError wraps the socket's)."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else exc
