"""What a worker on another machine needs to reach an ``s3://`` store: this machine's AWS settings.

A local worker inherits the orchestrator's environment, so botocore finds the endpoint, region and
keys there by itself. A worker on an SSH host or a rented instance starts from a login shell that
has none of them, so the remote backends send `store_environment` along with every job whose store
is an object store: the ``AWS_*`` and ``VOLTX_S3_*`` variables of this process, and, where the
keys live in a profile of this machine's ``~/.aws`` files, the keys that profile resolves to.

The result belongs in a job's secret channel only (the SSH backend's job env file: mode 0600,
sent on ssh's stdin, deleted by the job as it starts), never on a command line or in
``job.json``. Resolved keys are registered with log redaction.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from voltx._logging import add_secret

log = structlog.get_logger(__name__)

OBJECT_STORE_SCHEMES = ("s3://", "s3a://")
FORWARDED_PREFIXES = ("AWS_", "VOLTX_S3_")
# Paths to files of this machine: on another machine they name nothing, or something else. (A
# missing CA bundle would even break every request.) A profile's keys are resolved here instead.
LOCAL_FILE_VARIABLES = frozenset(
    {
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CA_BUNDLE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    }
)
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def is_object_store(url: str) -> bool:
    """Whether a store URL names an object store that a remote worker reaches by itself."""
    return url.startswith(OBJECT_STORE_SCHEMES)


def store_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a remote worker needs to open this process's ``s3://`` store.

    ``AWS_PROFILE`` (or the default profile of ``~/.aws``) is replaced by the keys and region it
    resolves to here, since the profile's files stay on this machine; when nothing resolves, the
    profile name goes as it is, for a host that has the same profile.
    """
    environ = os.environ if environ is None else environ
    env = {
        name: value
        for name, value in environ.items()
        if name.startswith(FORWARDED_PREFIXES) and name not in LOCAL_FILE_VARIABLES and value
    }
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return env
    resolved = _profile_settings(environ)
    if resolved.get("AWS_ACCESS_KEY_ID"):
        env.pop("AWS_PROFILE", None)
        for name, value in resolved.items():
            env.setdefault(name, value)
    return env


def _profile_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """Keys and region of the profile botocore would use here, or nothing.

    Only asked when a profile is named or this machine has AWS files: botocore's chain would
    otherwise end at the instance-metadata address, a pointless wait off EC2.
    """
    profile = environ.get("AWS_PROFILE") or None
    files = [
        Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"),
        Path(environ.get("AWS_CONFIG_FILE") or "~/.aws/config"),
    ]
    if profile is None and not any(path.expanduser().is_file() for path in files):
        return {}
    try:
        session_module: Any = importlib.import_module("botocore.session")
        session = session_module.Session(profile=profile)
        credentials = session.get_credentials()
        region = session.get_config_variable("region")
    except Exception as exc:  # botocore's errors vary by provider; the host may manage alone
        log.warning("AWS profile not resolved for remote jobs", profile=profile, error=str(exc))
        return {}
    if credentials is None:
        return {}
    frozen = credentials.get_frozen_credentials()
    values = {
        "AWS_ACCESS_KEY_ID": frozen.access_key,
        "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "AWS_SESSION_TOKEN": frozen.token,
    }
    resolved = {name: str(value) for name, value in values.items() if value}
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if name in resolved:
            add_secret(resolved[name])
    if region and not (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")):
        resolved["AWS_DEFAULT_REGION"] = str(region)
    return resolved
