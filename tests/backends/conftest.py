"""Fixtures for the backend tests: a real S3-compatible server (moto) on 127.0.0.1.

One `ThreadedMotoServer` serves the whole session; every test that asks for `s3` starts from an
empty server (``POST /moto-api/reset``) with one bucket, and with an environment that points
botocore at it with fake credentials and reads no AWS configuration of the machine (so no
profile, and never the instance-metadata address).
"""

from __future__ import annotations

import logging
import os
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

S3_BUCKET = "voltx-test"
# botocore's environment for the tests; the endpoint is added per server.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Variables of the developer's shell that would send the tests elsewhere or change the settings.
S3_ENV_REMOVED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_REGION")


@attrs.frozen
class S3Server:
    """The moto server of a test, emptied, with `bucket` created."""

    endpoint: str
    port: int
    bucket: str
    client: Any  # a boto3 S3 client, to look behind the store's back

    def url(self, prefix: str = "") -> str:
        """An ``s3://`` store URL in the test's bucket (a fresh prefix when none is given)."""
        return f"s3://{self.bucket}/{prefix or uuid.uuid4().hex[:12]}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data


@pytest.fixture(scope="session")
def s3_server_address() -> Iterator[tuple[str, int]]:
    """A moto S3 server on 127.0.0.1 (a free port), for the whole session."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    # werkzeug logs every request to stderr otherwise.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield host, port
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server_address: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The session's moto server, reset, with the test's bucket and botocore pointed at it."""
    boto3 = pytest.importorskip("boto3")
    host, port = s3_server_address
    endpoint = f"http://{host}:{port}"
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    for name in S3_ENV_REMOVED:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("VOLTX_S3_")]:
        monkeypatch.delenv(name)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    # botocore reads the endpoint itself, in this process and in every worker it starts.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=S3_BUCKET)
    return S3Server(endpoint=endpoint, port=port, bucket=S3_BUCKET, client=client)
