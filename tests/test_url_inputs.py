"""URL inputs (docs/inputs.md): identity without download, reads on the phase's host, pinning,
preflight, and where the bytes go.

The inputs are served by a loopback HTTP server (`_url_server`) that logs, per request, the body
bytes it sent and the process that held the connection. Phase 0.2 runs on the local backend, whose
workers are subprocesses: the orchestrator is this test process, so "0 bytes through the
orchestrator" is measured as no body byte sent to ``os.getpid()`` (its probes are HEADs), all of
them to the worker, and none of the content's bytes in the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

import voltx
from _url_server import CountingServer, jsonl, url_server
from voltx.errors import ConfigError, InputUnreachableError
from voltx.planning.preflight import PreflightError
from voltx.project import load_project
from voltx.remote_inputs import RemoteSource, current_digests, is_remote_artifact, read_document
from voltx.store import ArtifactStore

pytestmark = pytest.mark.integration

STACK_ROWS = [
    {"content": f"def f{i}(x):\n    return x + {i}\n" * 4, "path": f"src/m{i}.py"} for i in range(6)
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


server = url_server


def write_project(folder: Path, raw_stack: str, extra: str = "") -> Path:
    path = folder / "voltx.toml"
    path.write_text(
        f'[project]\nstore = "file://{folder}/store"\nbackend = "local"\nprofile = "tiny"\n\n'
        f"[inputs]\nraw_stack = {raw_stack}\n{extra}",
        encoding="utf-8",
    )
    return path


# --- the [inputs] table ----------------------------------------------------------------------


def test_inputs_table_takes_paths_urls_and_pinned_tables(tmp_path: Path) -> None:
    digest = "ab" * 32
    path = tmp_path / "voltx.toml"
    path.write_text(
        '[inputs]\nraw_humaneval = "data/h.jsonl"\nraw_stack = "hf://datasets/o/n/s.jsonl.zst"\n'
        f'raw_mbpp = {{ url = "https://example.org/m.json", sha256 = "{digest}", env = ["T"] }}\n',
        encoding="utf-8",
    )
    project = load_project(path)
    assert project.inputs == {"raw_humaneval": str(tmp_path / "data" / "h.jsonl")}
    assert project.remote_inputs["raw_stack"] == RemoteSource(url="hf://datasets/o/n/s.jsonl.zst")
    assert project.remote_inputs["raw_mbpp"].sha256 == digest
    assert project.remote_inputs["raw_mbpp"].variables == ("T",)


def test_a_bad_inputs_table_names_each_key(tmp_path: Path) -> None:
    path = tmp_path / "voltx.toml"
    path.write_text(
        '[inputs]\na = { url = "https://x.org/f", sha256 = "nothex" }\nb = { url = "rel/path" }\n'
        "c = 3\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    text = str(caught.value)
    assert "inputs.a" in text and "sha256" in text
    assert "inputs.b.url: expected a URL" in text
    assert "inputs.c: expected a path, got 3" in text


# --- identity --------------------------------------------------------------------------------


def test_identity_follows_the_served_content_without_reading_it(server: CountingServer) -> None:
    server.files["ident/a.jsonl"] = jsonl(STACK_ROWS)
    source = RemoteSource(url=server.url("ident/a.jsonl"))
    server.clear_log()
    first = source.probe("raw_stack")
    assert first.kind == "file" and first.size == len(server.files["ident/a.jsonl"])
    assert "ETag" in first.files[0].identity
    assert [a.method for a in server.log] == ["HEAD"]  # one HEAD, no body read
    same = current_digests({"raw_stack": source}, ["raw_stack"])
    server.files["ident/a.jsonl"] = jsonl(STACK_ROWS[:3])
    changed = current_digests({"raw_stack": source}, ["raw_stack"])
    assert same != changed
    assert all(a.body_bytes == 0 for a in server.log)


def test_unreachable_urls_are_one_line_errors(server: CountingServer) -> None:
    server.files["private/p.jsonl"] = b"{}\n"
    with pytest.raises(
        InputUnreachableError, match=r"^inputs.x: .*missing.jsonl: not found \(404\)$"
    ):
        RemoteSource(url=server.url("missing.jsonl")).probe("x")
    with pytest.raises(InputUnreachableError, match=r"credential refused \(HTTP 401\)"):
        RemoteSource(url=server.url("private/p.jsonl")).probe("x")


# --- runs ------------------------------------------------------------------------------------


def test_phase_reads_the_url_on_its_host_and_reruns_only_when_it_changes(
    server: CountingServer, tmp_path: Path
) -> None:
    content = jsonl(STACK_ROWS)
    server.files["run/stack.jsonl"] = content
    config = write_project(tmp_path, f'"{server.url("run/stack.jsonl")}"')
    server.clear_log()

    plan = voltx.plan("0.2", config=config)
    (route,) = [r for r in plan.inputs if r.artifact == "raw_stack"]
    assert route.through_here == 0 and route.size == len(content)
    assert route.describe() == (
        f"raw_stack {len(content)} B: read by this machine from {server.url('run/stack.jsonl')}"
    )

    result = voltx.run("0.2", config=config)
    assert result.phases["0.2"].status == "succeeded", result.phases["0.2"].reason
    # The measurement: every body byte went to another process (the worker), none to this one,
    # and the store holds the identity document, not the content.
    assert server.bytes_to(os.getpid()) == 0
    assert server.bytes_not_to(os.getpid()) == len(content)
    store = ArtifactStore.open(f"file://{tmp_path}/store")
    assert not any((tmp_path / "store").rglob(sha(content)))
    raw = store.resolve("raw_stack")
    assert is_remote_artifact(raw) and read_document(store, raw).url.endswith("run/stack.jsonl")
    stack = store.resolve("stack_python")
    assert stack.lineage["remote_inputs"]["raw_stack"]["sha256"] == {"stack.jsonl": sha(content)}

    again = voltx.run("0.2", config=config)
    assert again.phases["0.2"].status == "skipped"
    server.files["run/stack.jsonl"] = jsonl(STACK_ROWS[:4])
    changed = voltx.run("0.2", config=config)
    assert changed.phases["0.2"].status == "succeeded", changed.phases["0.2"].reason
    assert server.bytes_to(os.getpid()) == 0


def test_pinned_sha256_mismatch_stops_the_phase_naming_the_input(
    server: CountingServer, tmp_path: Path
) -> None:
    server.files["pin/stack.jsonl"] = jsonl(STACK_ROWS)
    wrong = sha(b"something else")
    config = write_project(
        tmp_path, f'{{ url = "{server.url("pin/stack.jsonl")}", sha256 = "{wrong}" }}'
    )
    result = voltx.run("0.2", config=config)
    phase = result.phases["0.2"]
    assert phase.status == "failed"
    assert "input 'raw_stack'" in (phase.reason or "") and "pinned" in (phase.reason or "")
    store = ArtifactStore.open(f"file://{tmp_path}/store")
    assert store.ref("stack_python") is None  # nothing committed


def test_preflight_says_one_line_per_unreachable_input(
    server: CountingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["private/stack.jsonl"] = jsonl(STACK_ROWS)
    monkeypatch.setenv("STACK_TOKEN", "a-wrong-token")
    private = server.url("private/stack.jsonl")
    config = write_project(
        tmp_path,
        f'"{server.url("nowhere/stack.jsonl")}"',
        f'raw_apps = {{ url = "{private}", token_env = "STACK_TOKEN" }}\n'
        f'raw_mbpp = {{ url = "{private}", env = ["VOLTX_TEST_UNSET_TOKEN"] }}\n',
    )
    monkeypatch.delenv("VOLTX_TEST_UNSET_TOKEN", raising=False)
    server.clear_log()
    problems = voltx.preflight("0.2", config=config)
    lines = [p for p in problems if p.startswith("inputs.")]
    assert lines == [
        f"inputs.raw_apps: {private}: credential refused (HTTP 401); check the credential its"
        " env or token_env names (needed by 0.2)",
        "inputs.raw_mbpp: environment variable VOLTX_TEST_UNSET_TOKEN (in its env) is not set"
        " (needed by 0.2)",
        f"inputs.raw_stack: {server.url('nowhere/stack.jsonl')}: not found (404) (needed by 0.2)",
    ]
    with pytest.raises(PreflightError):
        voltx.run("0.2", config=config)
    # Stopped before any job: no byte of either input was served to anyone.
    assert all(a.body_bytes == 0 for a in server.log)


def test_a_token_from_the_environment_reaches_a_private_url(
    server: CountingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = jsonl(STACK_ROWS)
    server.files["private/ok.jsonl"] = content
    monkeypatch.setenv("STACK_TOKEN", server.token)
    config = write_project(
        tmp_path, f'{{ url = "{server.url("private/ok.jsonl")}", token_env = "STACK_TOKEN" }}'
    )
    server.clear_log()
    result = voltx.run("0.2", config=config)
    assert result.phases["0.2"].status == "succeeded", result.phases["0.2"].reason
    assert server.bytes_not_to(os.getpid()) == len(content)
    # The token went in the job's environment, never into a file of the job or the store.
    assert not [
        p for p in tmp_path.rglob("*") if p.is_file() and server.token.encode() in p.read_bytes()
    ]


def test_archives_and_zstd_over_http_feed_the_stack_reader(
    server: CountingServer, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(2):
            data = jsonl(STACK_ROWS[index * 3 : index * 3 + 3])
            member = tarfile.TarInfo(f"stack/part{index}.jsonl")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    server.files["arch/stack_python.tar.gz"] = buffer.getvalue()
    server.files["arch/glob/a.jsonl.zst"] = zstandard.ZstdCompressor().compress(jsonl(STACK_ROWS))
    server.files["arch/glob/b.txt"] = b"not a dataset"
    for name, url in [
        ("tar", server.url("arch/stack_python.tar.gz")),
        ("zst", server.url("arch/glob/a.jsonl.zst")),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        config = write_project(folder, f'"{url}"')
        result = voltx.run("0.2", config=config)
        assert result.phases["0.2"].status == "succeeded", result.phases["0.2"].reason
        store = ArtifactStore.open(f"file://{folder}/store")
        out = store.get("stack_python", folder / "out", link=False)
        stats = json.loads((out / "stats.json").read_text())
        assert stats["count"] == len(STACK_ROWS) and stats["source"] == "raw_stack", name


# --- the command line ------------------------------------------------------------------------


def test_cli_add_manifest_and_plan_say_where_the_bytes_go(
    server: CountingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from voltx.cli import main

    content = zstandard.ZstdCompressor().compress(jsonl(STACK_ROWS))
    server.files["cli/stack.jsonl.zst"] = content
    url = server.url("cli/stack.jsonl.zst")
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    server.clear_log()
    assert main(["--store", store, "artifacts", "add", "raw_stack", url]) == 0
    added = capsys.readouterr().out
    assert f"1 file(s) at {url}" in added and "no bytes copied" in added
    assert all(a.body_bytes == 0 for a in server.log)  # identity only: HEADs

    assert main(["--store", store, "manifest", "0.2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("raw_stack")]
    assert len(rows) == 1 and url in rows[0] and "read by this machine from its URL" in rows[0]

    assert main(["--store", store, "plan", "0.2"]) == 0
    assert f"0.2 raw_stack {len(content)} B: read by this machine from {url}\n" in (
        capsys.readouterr().out
    )

    # A bad pin is refused with the option named; a good one is recorded in the document.
    assert main(["--store", store, "artifacts", "add", "raw_stack", url, "--sha256", "x"]) != 0
    assert "sha256" in capsys.readouterr().err
    pinned = ["artifacts", "add", "raw_stack", url, "--sha256", sha(content)]
    assert main(["--store", store, *pinned]) == 0
    opened = ArtifactStore.open(store)
    assert read_document(opened, opened.resolve("raw_stack")).sha256 == sha(content)


def test_hub_style_identities_are_kept_and_a_new_revision_is_a_new_input(tmp_path: Path) -> None:
    """What `hf://` reports (a blob id, an LFS digest, the last commit) is the identity; the
    filesystem here stands in for huggingface_hub's, which these tests cannot reach."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class HubLike(MemoryFileSystem):
        protocol = "hublike"
        root_marker = ""
        store: dict[str, object] = {}
        pseudo_dirs = [""]
        revision = "c0ffee"

        @classmethod
        def _strip_protocol(cls, path: str) -> str:
            return "/" + path.removeprefix("hublike://").strip("/")

        def info(self, path: str, **kwargs: object) -> dict[str, object]:
            info = dict(super().info(path, **kwargs))
            info.pop("created", None)
            if info["type"] == "file":
                info["blob_id"] = f"blob-{self.revision}"
                info["lfs"] = {"sha256": "ab" * 32, "size": info["size"]}
            return info

    fsspec.register_implementation("hublike", HubLike, clobber=True)
    fs = HubLike()
    fs.pipe("/datasets/org/stack/data.jsonl.zst", b"0123456789")
    source = RemoteSource(url="hublike://datasets/org/stack/data.jsonl.zst")
    first = source.probe("raw_stack")
    assert (
        first.files[0].identity["blob_id"] == '"blob-c0ffee"'
        or first.files[0].identity["blob_id"] == "blob-c0ffee"
    )
    assert "lfs" in first.files[0].identity and first.size == 10
    before = current_digests({"raw_stack": source}, ["raw_stack"])
    assert current_digests({"raw_stack": source}, ["raw_stack"]) == before  # stable
    HubLike.revision = "beef00"
    assert current_digests({"raw_stack": source}, ["raw_stack"]) != before
    folder = RemoteSource(url="hublike://datasets/org/stack").probe("raw_stack")
    assert folder.kind == "folder" and [f.path for f in folder.files] == ["data.jsonl.zst"]


def test_the_disk_check_counts_a_url_inputs_remote_size(tmp_path: Path) -> None:
    # The job downloads a URL input before its readers run (docs/inputs.md), so the bytes the
    # remote holds count against the job's disk, whether preflight just probed them or the
    # store recorded them with `voltx artifacts add NAME URL`.
    from voltx.planning.estimates import artifact_bytes
    from voltx.planning.preflight import _disk_problems
    from voltx.remote_inputs import record_remote
    from voltx.session import open_session
    from voltx.store.remote import RemoteFile, RemoteInput
    from voltx_backends.local import LocalBackend

    class TenGigabyteDisk(LocalBackend):
        def job_disk_gb(self, resources: voltx.Resources) -> float:
            return 10.0

    config = write_project(tmp_path, '"https://data.example/stack.jsonl"')
    session = open_session(config=str(config))
    backend = TenGigabyteDisk(tmp_path / "jobs")
    assert _disk_problems(session, backend, ["0.2"], {"raw_stack": 2 * 10**9}) == []
    (line,) = _disk_problems(session, backend, ["0.2"], {"raw_stack": 30 * 10**9})
    assert line.startswith("phase 0.2 needs about 30 GB of disk (inputs 30.0") and "10 GB" in line

    url = "https://data.example/apps.jsonl"
    document = RemoteInput(url=url, kind="file", files=(RemoteFile("apps.jsonl", url, 7 * 10**9),))
    record_remote(session.store, "raw_apps", RemoteSource(url=url), document)
    assert artifact_bytes(session.store, ("raw_apps",), {}) == 7 * 10**9
