"""What a remote job's environment carries: the store's AWS settings, sent without being listed.

No host is contacted: `SSHBackend._job_env` is what `submit` puts into the job's 0600 env file.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest

from voltx.backend import JobRequest
from voltx.job_document import JobDocument
from voltx.secrets import redact_text
from voltx_backends._store_env import is_object_store, store_environment
from voltx_backends.ssh import SSHBackend
from voltx_backends.vast._local import LocalState

AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-key-for-the-test",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "VOLTX_S3_PART_SIZE": "32MiB",
}


def job(store: str) -> JobRequest:
    document = JobDocument(run_id="run-1", phase_id="p", store=store, fingerprint="f" * 64)
    files = {"job.json": document.to_json()}
    return JobRequest("job-1", ("python", "-m", "voltx", "worker", "job.json"), files=files)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    # Files of this machine: not sent.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def only_aws(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    """This process's AWS environment (botocore reads it) is `environ` and nothing else."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def backend(forward_env: tuple[str, ...] = ()) -> SSHBackend:
    return SSHBackend(host="127.0.0.1", remote_root="/tmp/voltx-remote", forward_env=forward_env)


def test_object_store_jobs_get_the_aws_settings_unasked(aws_env: None) -> None:
    env = backend()._job_env(job("s3://bucket/prefix"))
    assert {name: env[name] for name in AWS} == AWS
    assert "AWS_CONFIG_FILE" not in env and "AWS_CA_BUNDLE" not in env


def test_folder_store_jobs_get_no_aws_settings(aws_env: None) -> None:
    for request in (job("file:///tmp/store"), JobRequest("job-2", ("true",))):
        env = backend()._job_env(request)
        assert not [name for name in env if name.startswith(("AWS_", "VOLTX_S3_"))]


def test_listed_and_job_variables_win_over_the_store_settings(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXTRA", "x")
    request = job("s3://bucket/prefix")
    request = JobRequest(
        request.job_id, request.argv, request.files, env={"AWS_DEFAULT_REGION": "us-west-2"}
    )
    env = backend(forward_env=("EXTRA",))._job_env(request)
    assert env["EXTRA"] == "x" and env["AWS_DEFAULT_REGION"] == "us-west-2"


def test_a_profile_of_this_machine_is_sent_as_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("botocore")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[team]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = profile-secret-xyz\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = ap-south-1\n")
    environ = {
        "AWS_PROFILE": "team",
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(config),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    only_aws(monkeypatch, environ)
    env = store_environment()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAPROFILE"
    assert env["AWS_SECRET_ACCESS_KEY"] == "profile-secret-xyz"
    assert env["AWS_DEFAULT_REGION"] == "ap-south-1"
    # The profile's files stay here, and so does its name: the keys stand in for it.
    assert "AWS_PROFILE" not in env and "AWS_CONFIG_FILE" not in env
    assert "profile-secret-xyz" not in redact_text("key profile-secret-xyz")


def test_an_unresolvable_profile_goes_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("botocore")
    only_aws(
        monkeypatch,
        {
            "AWS_PROFILE": "elsewhere",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    env = store_environment()
    assert env["AWS_PROFILE"] == "elsewhere"


def test_object_store_urls() -> None:
    assert is_object_store("s3://bucket/prefix")
    assert not is_object_store("file:///tmp/store")
    assert not is_object_store("/tmp/store")


def test_parallel_jobs_of_a_run_share_one_key_pair(tmp_path: Path) -> None:
    # Provisioning threads asked at once used to make a key each, and pair an instance's public
    # key with another thread's private one.
    state = LocalState(tmp_path)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: state.run_key("run-1"), range(8)))
    assert len(set(keys)) == 1
    private, public = keys[0]
    assert Path(f"{private}.pub").read_text().strip() == public
