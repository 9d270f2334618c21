"""The job the scheduler hands a backend for one attempt of one phase.

Its ``job.json`` (`voltx.job_document`) holds the phase's config without its secrets: a value
under a secret-named key, or any registered secret value (`voltx.secrets`), is replaced by ``***``
there and travels in the job's environment instead (`voltx.worker.SECRETS_ENV`), which backends
never write to disk (the job files themselves are written with mode 0600).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from voltx._logging import redact_text
from voltx.backend import JobRequest
from voltx.job_document import JOB_FILE, JobDocument
from voltx.session import split_secrets
from voltx.spec import Resources
from voltx.worker import SECRETS_ENV


def job_request(
    document: JobDocument,
    config: Mapping[str, Any],
    *,
    python: str,
    resources: Resources,
    credentials: Mapping[str, str] | None = None,
) -> JobRequest:
    """The request that runs `document` with the phase's resolved `config` (secrets included).

    The public part of `config` goes into the document, the secret part into the environment. A
    profile name is no place for a secret: one that holds a registered secret is written ``***``.
    `credentials` (the variables URL inputs need, `voltx.remote_inputs.credential_env`) join the
    environment too.
    """
    public, secret = split_secrets(config)
    job = attrs.evolve(document, config=public, profile=_redacted(document.profile))
    return JobRequest(
        job_id=job_id(job.run_id, job.phase_id, job.attempt),
        argv=(python, "-m", "voltx", "worker", JOB_FILE),
        files={JOB_FILE: job.to_json()},
        env={**(credentials or {}), **({SECRETS_ENV: json.dumps(secret)} if secret else {})},
        resources=resources,
        devices=job.devices,
    )


def job_id(run_id: str, phase_id: str, attempt: int) -> str:
    """The backend's name for one attempt of one phase of a run."""
    # Backends accept letters, digits and "_ . -" in a job id (it names folders and labels).
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}-{phase_id}-{attempt}")


def _redacted(profile: str | None) -> str | None:
    return None if profile is None else redact_text(profile)
