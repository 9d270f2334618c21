"""``voltx vast ls`` and ``voltx vast reap`` against the fake Vast API, through the core CLI.

The core CLI hands ``voltx vast ...`` to ``voltx_backends.vast.cli`` by module name; these tests go
through that seam (in this process, and once in a real ``python -m voltx`` subprocess), and check
the error a user gets where voltx-backends is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fake_vast as fakes
import pytest
from fake_vast import FakeVast

from voltx.cli import main
from voltx_backends.vast._local import LocalState

pytestmark = pytest.mark.integration

fake_vast = fakes.fake_vast

DEAD_RUN_LABEL = "voltx-20260101-000000-abcdef-2.1"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "voltx.toml").write_text("[backends.vast]\nrequest_spacing_s = 0.0\n")
    monkeypatch.chdir(folder)
    return folder


def test_ls_shows_voltx_instances_their_owner_and_cost(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = fake_vast.add_instance(DEAD_RUN_LABEL, offer_id=5000)
    owned = fake_vast.add_instance("voltx-20260102-000000-fedcba-3.1", offer_id=5002)
    foreign = fake_vast.add_instance("my-notebook", offer_id=5001)
    # This test process holds the lease of the second one, as a live orchestrator would.
    LocalState(project / ".voltx" / "work").write_lease(
        "voltx-20260102-000000-fedcba-3.1", "20260102-000000-fedcba", owned
    )
    assert main(["vast", "ls"]) == 0
    out = capsys.readouterr().out
    assert DEAD_RUN_LABEL in out and "orphan" in out
    assert "pid " in out and "A100 SXM4" in out
    assert "my-notebook" not in out
    assert "2 instance(s): $0.00 so far, $1.600/h now" in out

    assert main(["vast", "ls", "--all", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {orphan, owned, foreign}
    assert rows[orphan]["owner"] == "orphan" and rows[foreign]["owner"] == "-"
    assert rows[owned]["owner"].startswith("pid ")
    assert rows[orphan]["dph_total"] == 0.40 and rows[orphan]["cost_so_far"] >= 0


def test_reap_destroys_orphans_only(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = fake_vast.add_instance(DEAD_RUN_LABEL)
    foreign = fake_vast.add_instance("my-notebook", offer_id=5001)
    assert main(["vast", "reap", "--dry-run"]) == 0
    assert f"would destroy instance {orphan}" in capsys.readouterr().out
    assert len(fake_vast.live()) == 2
    assert main(["vast", "reap"]) == 0
    assert f"destroyed instance {orphan}" in capsys.readouterr().out
    assert [i.id for i in fake_vast.live()] == [foreign]
    assert main(["vast", "reap"]) == 0
    assert "no orphan voltx instances" in capsys.readouterr().out
    fake_vast.instances[foreign].destroyed = True


def test_vast_help_and_errors_come_from_the_plugin(
    project: Path, fake_vast: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["vast", "--help"])
    assert exited.value.code == 0
    assert "destroy voltx instances no live run owns" in capsys.readouterr().out


def test_without_voltx_backends_the_command_says_what_to_install(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "voltx_backends.vast.cli", None)
    assert main(["vast", "ls"]) == 1
    err = capsys.readouterr().err
    assert "comes with the voltx-backends package" in err and "pip install voltx-backends" in err


def test_the_seam_in_a_real_process(project: Path, fake_vast: FakeVast) -> None:
    fake_vast.add_instance(DEAD_RUN_LABEL)
    result = subprocess.run(
        [sys.executable, "-m", "voltx", "vast", "ls", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [row["label"] for row in json.loads(result.stdout)] == [DEAD_RUN_LABEL]
    assert fake_vast.api_key not in result.stdout + result.stderr
    fake_vast.instances[int(json.loads(result.stdout)[0]["id"])].destroyed = True
