"""Getting a new instance ready for a job: the install and the upload side by side.

"Every minute the instance is on costs money" (docs/vast.md, "Machine pool"): once SSH answers,
voltx's install runs in a thread of its own while the job's inputs are uploaded, and the launch
waits for both. Jobs started on one machine at once share its install (the SSH backend lets one
run and the others wait for it); the upload is content-addressed, so what the machine already
holds is not sent again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import structlog

from voltx.errors import BackendError
from voltx_backends.ssh import SSHBackend
from voltx_backends.vast.provision import Rental

log = structlog.get_logger(__name__)


def prepare(rental: Rental, files: Mapping[str, bytes], report: Callable[[str], None]) -> None:
    """Install voltx on the rental's machine (unless it is there) while the job's inputs (in
    its job `files`) are uploaded; return when both are done. Failures are only logged: the
    launch installs and uploads again, and fails the job with the error."""
    ssh = rental.ssh
    assert ssh is not None, "prepare needs a connected rental"
    install: threading.Thread | None = None
    if not ssh.bootstrapped:
        install = threading.Thread(target=_bootstrap_quietly, args=(ssh,), daemon=True)
        install.start()
    report(f"uploading the job's inputs to {rental.describe()}")
    try:
        ssh.stage_ahead(files)
    except (BackendError, OSError) as exc:
        log.warning("inputs not uploaded ahead; the launch uploads them", error=str(exc))
    if install is not None:
        report(f"installing voltx on {rental.describe()}")
        install.join()


def _bootstrap_quietly(ssh: SSHBackend) -> None:
    try:
        ssh.bootstrap()
    except Exception as exc:
        log.warning("install ahead of the launch failed", host=ssh.destination, error=str(exc))
