"""The settings of an ``s3://`` store: where it is, who you are, and how to move large files.

They come, highest first, from the storage options a program passes
(``ArtifactStore.open("s3://bucket/prefix", part_size="16MiB")``), from ``VOLTX_S3_*``
environment variables (``VOLTX_S3_PART_SIZE=16MiB``), and from the defaults below. Where the
store is and who you are is best left to the usual AWS environment, which botocore reads itself
in every process, workers included:

==========================  ===========================================================
``AWS_ENDPOINT_URL_S3``     an S3-compatible server (MinIO, moto, R2); also
                            ``AWS_ENDPOINT_URL``
``AWS_PROFILE``             a profile of ``~/.aws/config`` (SSO, role, keys)
``AWS_REGION``              the bucket's region; also ``AWS_DEFAULT_REGION``
``AWS_ACCESS_KEY_ID`` ...   keys, with ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``
==========================  ===========================================================

Whichever the source, the values go through voltx's one config path (`voltx.config.collect`),
so every bad setting is reported at once. Keys in a project file would end up in version
control and in every copy of it, so `S3Settings.from_config` refuses ``key``, ``secret`` and
``token`` unless the table also says ``allow_plaintext_credentials = true``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from voltx.config import collect
from voltx.errors import ConfigError, did_you_mean

MIB = 2**20
# S3's own limits on a multipart upload: parts of 5 MiB to 5 GiB, at most 10,000 of them.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 2**30
MAX_PARTS = 10_000

ENV_PREFIX = "VOLTX_S3_"
CHECKSUMS = ("crc32", "none")
RETRY_MODES = ("standard", "adaptive", "legacy")
_CREDENTIAL_KEYS = ("key", "secret", "token")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"16MiB"``, ``"64M"`` or ``"1GiB"`` (powers of 2)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"expected a size such as 16MiB, got {value!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "")[:1].lower()])


def _parse_bool(value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _part_size(_instance: Any, _attribute: Any, value: int) -> None:
    if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
        raise ValueError(f"part_size must be between 5 MiB and 5 GiB (S3's limits), got {value}")


def _at_least_one(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class S3Settings:
    """Every knob of voltx's S3 store, checked when the store is opened."""

    # -- where, and as whom (None: botocore's own chain: environment, profile, instance role) --
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    key: str | None = attrs.field(default=None, repr=False)
    secret: str | None = attrs.field(default=None, repr=False)
    token: str | None = attrs.field(default=None, repr=False)

    # -- large files ------------------------------------------------------------------------
    # 16 MiB parts, 8 in flight: 128 MiB of memory per file at most. boto3 uses 8 MiB; twice
    # that halves the requests (and the whole-object reads of servers that slice every ranged
    # GET out of the full object, as moto does). bench/s3_transfer.py against moto, voltx over
    # boto3 (push, pull): 8 MiB 0.85, 0.90; 16 MiB 0.94, 1.76; 32 MiB 0.74, 2.78.
    part_size: int = attrs.field(default=16 * MIB, converter=parse_size, validator=_part_size)
    max_concurrency: int = attrs.field(default=8, converter=int, validator=_at_least_one)

    # -- failures -----------------------------------------------------------------------------
    # Attempts per request, made by botocore with exponential backoff and full jitter; it retries
    # throttling, 5xx answers, timeouts and refused or dropped connections.
    retries: int = attrs.field(default=4, converter=int, validator=_at_least_one)
    retry_mode: str = attrs.field(default="standard", validator=attrs.validators.in_(RETRY_MODES))
    # Attempts per part or range of a large transfer, by voltx, on top of botocore's: a part that
    # still fails (the server restarted, a body broke off mid-read) is sent again instead of
    # losing the whole upload, which is what s3fs does.
    transfer_attempts: int = attrs.field(default=3, converter=int, validator=_at_least_one)
    backoff_s: float = attrs.field(default=0.5, converter=float, validator=_positive)
    max_backoff_s: float = attrs.field(default=10.0, converter=float, validator=_positive)
    connect_timeout_s: float = attrs.field(default=10.0, converter=float, validator=_positive)
    read_timeout_s: float = attrs.field(default=120.0, converter=float, validator=_positive)

    # -- what the server must support -----------------------------------------------------------
    # "crc32": every part, and every file sent in one request, carries its CRC32 in a header
    # (declared when a multipart upload starts), so the server checks every byte it keeps.
    # Against moto it is faster too: without a declared algorithm moto assembles one more copy
    # of the whole object at completion to checksum it. "none": no checksums, for a server that
    # refuses them. botocore's own checksums stay off either way: it would add them as
    # aws-chunked trailers, which several S3-compatible servers reject (boto/botocore#3352) and
    # which halve upload speed against moto. Downloads are checked where it matters:
    # `voltx.store.transfer` re-hashes every blob it pulls against its sha256 name.
    checksum: str = attrs.field(default="crc32", validator=attrs.validators.in_(CHECKSUMS))
    # Manifests are written with If-None-Match: * so two writers cannot both create one. AWS
    # and moto honour it (tests/backends checks moto); for a server that does not, set this
    # false to check and then write instead. That leaves a race: two writers of one manifest
    # may both succeed and the later one stays. Both describe the same content (the manifest is
    # named by its digest), so readers are not misled; only lineage and time may differ.
    conditional_writes: bool = attrs.field(default=True, converter=_parse_bool)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> S3Settings:
        """Settings from storage options over ``VOLTX_S3_*`` variables over the defaults.

        Options set to None count as not given. Raises ValueError naming every bad setting.
        """
        problems: list[str] = []
        settings = cls._collect(options, environ, "", problems)
        if settings is None:
            raise ValueError("S3 store settings: " + "; ".join(problems))
        return settings

    @classmethod
    def from_config(cls, table: Mapping[str, Any], source: str | None = None) -> S3Settings:
        """Settings from a project file's table; every problem is reported in one ConfigError."""
        table = dict(table)
        insist = table.pop("allow_plaintext_credentials", False)
        plaintext = [key for key in _CREDENTIAL_KEYS if table.get(key)]
        problems: list[str] = []
        if plaintext and insist is not True:
            problems += [
                f"store.{key}: credentials in a project file end up in version control;"
                " use AWS_PROFILE or the AWS_* environment variables"
                " (or set allow_plaintext_credentials = true)"
                for key in plaintext
            ]
        settings = cls._collect(table, None, "store", problems)
        if settings is None or problems:
            raise ConfigError(problems, source=source)
        return settings

    @classmethod
    def _collect(
        cls,
        options: Mapping[str, Any],
        environ: Mapping[str, str] | None,
        path: str,
        problems: list[str],
    ) -> S3Settings | None:
        """The settings, through voltx's one config path; None when any problem was found."""
        environ = os.environ if environ is None else environ
        known = {field.name for field in attrs.fields(cls)}
        values: dict[str, Any] = {}
        for name, text in environ.items():
            if name.startswith(ENV_PREFIX) and text != "":
                values[name[len(ENV_PREFIX) :].lower()] = text
        # Credentials reach botocore through its own environment variables; ours would be a
        # second, surprising place for a secret to live.
        problems += [
            f"{ENV_PREFIX}{key.upper()}: unknown setting{did_you_mean(key, known)}"
            for key in sorted(values)
            if key not in known or key in _CREDENTIAL_KEYS
        ]
        values = {key: value for key, value in values.items() if key in known}
        values.update({key: value for key, value in options.items() if value is not None})
        prefix = f"{path}." if path else ""
        problems += [
            f"{prefix}{key}: unknown setting{did_you_mean(key, known)}"
            for key in sorted(options)
            if key not in known
        ]
        if problems:
            return None
        settings = collect(cls, values, path, problems)
        return settings if isinstance(settings, S3Settings) else None

    def effective_part_size(self, size: int) -> int:
        """The part size for a file of `size` bytes: ours, grown to stay within 10,000 parts."""
        return max(self.part_size, -(-size // MAX_PARTS))

    def s3fs_options(self) -> dict[str, Any]:
        """Keyword arguments for `s3fs.S3FileSystem` that carry these settings."""
        config: dict[str, Any] = {
            "retries": {"max_attempts": self.retries, "mode": self.retry_mode},
            "connect_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
            # One connection per part in flight, plus some for small requests beside them.
            "max_pool_connections": max(10, 2 * self.max_concurrency),
            # Only where S3 requires one: voltx sends its own (see `checksum`).
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        options: dict[str, Any] = {
            "config_kwargs": config,
            "max_concurrency": self.max_concurrency,
            # Ranged reads of s3fs's own open() and cat use the same size as our parts.
            "default_block_size": self.part_size,
            # Other processes write the same prefix (workers, other runs): a cached listing
            # would hide their refs and records.
            "use_listings_cache": False,
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        if self.profile:
            options["profile"] = self.profile
        for name in _CREDENTIAL_KEYS:
            if getattr(self, name):
                options[name] = getattr(self, name)
        return options
