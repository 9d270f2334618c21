"""URL inputs on the SSH backend (docs/inputs.md): the host reads them, not the orchestrator.

``voltx run 0.2`` runs as a subprocess with a folder store here, so every store input would be
staged to the host through this machine; a URL input must not be. Two sources: the loopback HTTP
server of `_url_server` (its log names the process that held each connection, so the body bytes
sent to the orchestrator's process are measured: 0) and a second moto bucket (another bucket than
any store; its credentials are forwarded as the input's ``env`` lists them). In both, neither the
store here nor the host's staged copy holds the content's bytes, only its identity document.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import ssh_fixtures
import zstandard
from ssh_fixtures import SSHServer

from _support import statuses, subprocess_env
from _url_server import CountingServer, jsonl, tar, url_server
from voltx.store import ArtifactStore

if TYPE_CHECKING:
    from conftest import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sshd_server = ssh_fixtures.sshd_server
RUN_TIMEOUT_S = 240
SHRINK = (
    "--profile",
    "tiny",
    "--set",
    "0.2.generated_count=30",
    "--set",
    "0.2.corpus_max_files=50",
)
FORWARD_ENV = ["PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_HOME", "VOLTX_CACHE_DIR"]
INPUT_BUCKET = "voltx-url-inputs"
ROWS = [
    {"content": f"def g{i}(y):\n    return y * {i}\n" * 4, "path": f"g{i}.py"} for i in range(5)
]


server = url_server


def write_project(folder: Path, sshd: SSHServer, raw_stack: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = sshd.settings(
        folder.parent / "remote", python=sys.executable, forward_env=FORWARD_ENV
    )
    lines = ["[project]", 'backend = "ssh"', "", "[inputs]", f"raw_stack = {raw_stack}", ""]
    lines += [
        "[backends.ssh]",
        *(f"{key} = {json.dumps(value)}" for key, value in settings.items()),
    ]
    (folder / "voltx.toml").write_text("\n".join(lines) + "\n")
    return folder


def run_0_2(project: Path) -> tuple[int, str]:
    """`voltx run 0.2` as a subprocess: (the orchestrator's pid, its output)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "0.2", *SHRINK],
        cwd=project,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0, output
    return process.pid, output


def holds(folder: Path, data: bytes) -> bool:
    digest = hashlib.sha256(data).hexdigest()
    return folder.exists() and any(True for _ in folder.rglob(digest))


def stack_count(store: ArtifactStore, tmp_path: Path) -> int:
    out = store.get("stack_python", tmp_path / "stack_out", link=False, overwrite=True)
    return int(json.loads((out / "stats.json").read_text())["count"])


def test_ssh_host_reads_an_http_tar_gz_itself(
    sshd_server: SSHServer, server: CountingServer, tmp_path: Path
) -> None:
    archive = tar({"stack/a.jsonl": jsonl(ROWS[:2]), "stack/b.jsonl": jsonl(ROWS[2:])})
    server.files["ssh/stack_python.tar.gz"] = archive
    project = write_project(
        tmp_path / "project", sshd_server, json.dumps(server.url("ssh/stack_python.tar.gz"))
    )
    plan = subprocess.run(
        [sys.executable, "-m", "voltx", "plan", "0.2", "--profile", "tiny"],
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert plan.returncode == 0, plan.stderr
    assert (
        f"0.2 raw_stack {len(archive)} B: read by the ssh host from"
        f" {server.url('ssh/stack_python.tar.gz')}; 0 B through this machine" in plan.stdout
    ), plan.stdout
    manifest = subprocess.run(
        [sys.executable, "-m", "voltx", "manifest", "0.2"],
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert "read by the ssh host from its URL; 0 B through this machine" in manifest.stdout, (
        manifest.stdout + manifest.stderr
    )
    server.clear_log()
    orchestrator, output = run_0_2(project)
    assert statuses(output) == {"0.2": "succeeded"}, output
    # Measured at the server: every body byte went to the host's worker, none to `voltx run`.
    assert server.bytes_to(orchestrator) == 0
    assert server.bytes_not_to(orchestrator) == len(archive)
    # Neither the store here nor the host's staged copy of it holds the archive.
    store = ArtifactStore.open(str(project / ".voltx"))
    assert not holds(project / ".voltx", archive) and not holds(tmp_path / "remote", archive)
    assert stack_count(store, tmp_path) == len(ROWS)
    lineage = store.resolve("stack_python").lineage["remote_inputs"]["raw_stack"]
    assert lineage["sha256"] == {"stack_python.tar.gz": hashlib.sha256(archive).hexdigest()}

    # Unchanged: skipped. Changed: read again.
    _, output = run_0_2(project)
    assert statuses(output) == {"0.2": "skipped"}, output
    server.files["ssh/stack_python.tar.gz"] = tar({"stack/a.jsonl": jsonl(ROWS[:3])})
    _, output = run_0_2(project)
    assert statuses(output) == {"0.2": "succeeded"}, output
    assert stack_count(store, tmp_path) == 3


def test_ssh_host_reads_zst_files_of_another_bucket(
    sshd_server: SSHServer, s3: S3Server, tmp_path: Path
) -> None:
    s3.client.create_bucket(Bucket=INPUT_BUCKET)
    parts = {
        "stack/p0.jsonl.zst": zstandard.ZstdCompressor().compress(jsonl(ROWS[:2])),
        "stack/p1.jsonl.zst": zstandard.ZstdCompressor().compress(jsonl(ROWS[2:])),
        "stack/readme.txt": b"not part of the glob",
    }
    for key, data in parts.items():
        s3.client.put_object(Bucket=INPUT_BUCKET, Key=key, Body=data)
    # The worker on the host gets the bucket's credentials and endpoint from the input's env.
    variables = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]
    env = json.dumps([*variables, "AWS_ENDPOINT_URL_S3"])
    source = f'{{ url = "s3://{INPUT_BUCKET}/stack/*.jsonl.zst", env = {env} }}'
    project = write_project(tmp_path / "project", sshd_server, source)
    _, output = run_0_2(project)
    assert statuses(output) == {"0.2": "succeeded"}, output
    store = ArtifactStore.open(str(project / ".voltx"))
    assert stack_count(store, tmp_path) == len(ROWS)
    for data in parts.values():
        assert not holds(project / ".voltx", data) and not holds(tmp_path / "remote", data)
    read = store.resolve("stack_python").lineage["remote_inputs"]["raw_stack"]["sha256"]
    assert sorted(read) == ["p0.jsonl.zst", "p1.jsonl.zst"]

    # A new object in the bucket changes the input: 0.2 runs again and reads it too.
    s3.client.put_object(
        Bucket=INPUT_BUCKET,
        Key="stack/p2.jsonl.zst",
        Body=zstandard.ZstdCompressor().compress(
            jsonl([{"content": "def h(z):\n    return z\n" * 5}])
        ),
    )
    _, output = run_0_2(project)
    assert statuses(output) == {"0.2": "succeeded"}, output
    assert stack_count(store, tmp_path) == len(ROWS) + 1


def test_an_s3_version_id_in_the_url_pins_that_version(s3: S3Server, tmp_path: Path) -> None:
    from voltx.remote_inputs import RemoteSource, fetch_remote

    s3.client.create_bucket(Bucket=INPUT_BUCKET)
    s3.client.put_bucket_versioning(
        Bucket=INPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    old = jsonl(ROWS[:2])
    first = s3.client.put_object(Bucket=INPUT_BUCKET, Key="v/stack.jsonl", Body=old)
    s3.client.put_object(Bucket=INPUT_BUCKET, Key="v/stack.jsonl", Body=jsonl(ROWS))
    url = f"s3://{INPUT_BUCKET}/v/stack.jsonl?versionId={first['VersionId']}"
    document = RemoteSource(url=url).probe("raw_stack")
    assert document.size == len(old)
    read = fetch_remote("raw_stack", document, tmp_path / "raw_stack")
    assert (tmp_path / "raw_stack").read_bytes() == old
    assert read["sha256"] == {"stack.jsonl": hashlib.sha256(old).hexdigest()}
