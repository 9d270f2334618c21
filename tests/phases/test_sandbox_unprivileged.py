"""The adversarial programs again, with voltx running as an ordinary user (``nobody``).

As an ordinary user bubblewrap builds a user namespace (uid 65534 inside, mapped to the caller)
instead of dropping to a pool uid with ``setpriv``, so the containment has to be checked again
in that mode. The test runs a script as ``nobody`` through ``runuser`` (so it needs root to
start, as CI has) with Debian's ``/usr/bin/python3``: the interpreter voltx's tests run on here
lives under ``/root``, which ``nobody`` cannot read. Only the same minor version of Python can
import this environment's compiled packages, so another version skips.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

SYSTEM_PYTHON = Path("/usr/bin/python3")


@functools.cache
def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start a process as nobody"
    if shutil.which("runuser") is None or shutil.which("bwrap") is None:
        return "needs runuser and bubblewrap"
    if not SYSTEM_PYTHON.exists():
        return f"needs {SYSTEM_PYTHON}"
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != str(sys.version_info[:2]):
        return f"{SYSTEM_PYTHON} is not Python {sys.version_info[0]}.{sys.version_info[1]}"
    return None


# Run as nobody: each program of argv[2] (JSON) through the sandbox; prints what each did.
SCRIPT = """
import json, site, sys, time
site.addsitedir(sys.argv[1])
from voltx_phases.execution.sandbox import SandboxLimits, run_program

limits = SandboxLimits(python=sys.executable, timeout_s=2.0, memory_bytes=512 << 20,
                       file_size_bytes=1 << 20, work_bytes=16 << 20)
checks = {}
for name, source in json.loads(sys.argv[2]).items():
    started = time.monotonic()
    result = run_program(source, limits)
    checks[name] = [result.status, result.failure, result.stdout[-300:],
                    time.monotonic() - started]
print(json.dumps(checks))
"""


def _programs(port: int, home: Path, token: str) -> dict[str, str]:
    return {
        "view": "import os\nprint(os.getuid(), sorted(os.listdir('/')), dict(os.environ))",
        "fork_bomb": (
            "import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass\n"
        ),
        "memory": "b = bytearray(10 * 2**30)",
        "regex": "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')",
        "network": (
            "import socket\ns = socket.socket()\ns.settimeout(1)\ntry:\n"
            f"    s.connect(('127.0.0.1', {port}))\n    print('CONNECTED')\n"
            "except OSError:\n    print('blocked')"
        ),
        "secret": (
            f"import os\nfor p in [{str(home / 'secret')!r}, os.path.expanduser('~/secret')]:\n"
            "    try:\n        print(open(p).read())\n    except OSError:\n"
            "        print('hidden')\nprint(os.environ.get('VOLTX_PLANTED_SECRET'))"
        ),
        "escape": (
            f"import os\nos.system('rm -rf ~ {home}')\ntry:\n"
            f"    open({str(home / 'written')!r}, 'w').write('x')\n    print('WROTE')\n"
            "except OSError:\n    print('refused')"
        ),
        "grandchild": (
            "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
            f"'import time; time.sleep(60)', {token!r}], start_new_session=True)"
        ),
        "infinite_loop": "while True:\n    pass",
        "fill": (
            "written = 0\ntry:\n    for i in range(1000):\n"
            "        open(f'fill-{i}', 'wb').write(b'x' * (1 << 19))\n"
            "        written += 1 << 19\nexcept OSError as error:\n"
            "    print('stopped', error.errno, written)"
        ),
        "output": (
            "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n"
            "    sys.stdout.write(chunk)"
        ),
        "kill_parent": (
            f"import os, signal\nfor pid in (os.getppid(), 1, {os.getpid()}, -1):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass"
        ),
        "base_exception": (
            "import time\nwhile True:\n    try:\n        time.sleep(10)\n"
            "    except BaseException:\n        pass"
        ),
    }


@pytest.mark.slow
@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_hostile_programs_are_contained_as_an_ordinary_user() -> None:
    # A home for nobody that it can reach (pytest's tmp_path sits in a 0700 folder of root's).
    outer = Path(tempfile.mkdtemp(prefix="voltx-nobody-"))
    try:
        _check_as_nobody(outer)
    finally:
        shutil.rmtree(outer)


def _check_as_nobody(outer: Path) -> None:
    outer.chmod(0o755)
    home = outer / "home"
    home.mkdir()
    secret = secrets.token_hex(8)
    (home / "secret").write_text(secret)
    (home / "canary").write_text("alive")
    token = secrets.token_hex(8)
    home.chmod(0o777)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        programs = _programs(listener.getsockname()[1], home, token)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "VOLTX_PLANTED_SECRET": secret}
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        done = subprocess.run(
            [
                str(shutil.which("runuser")),
                *("-u", "nobody", "--", str(SYSTEM_PYTHON), "-c", SCRIPT),
                *(sysconfig.get_paths()["purelib"], json.dumps(programs)),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(home),
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        with pytest.raises(BlockingIOError):
            listener.accept()
    checks = json.loads(done.stdout.splitlines()[-1])
    uid = checks["view"][2].split()[0]
    assert checks["view"][0] == "passed" and uid == "65534"
    assert "root" not in checks["view"][2] and secret not in checks["view"][2]
    assert checks["fork_bomb"][0] != "passed" and checks["fork_bomb"][3] < 10
    assert checks["memory"][1] == "memory"
    assert checks["regex"][1] == "timeout" and checks["regex"][3] < 5
    assert "blocked" in checks["network"][2] and "CONNECTED" not in checks["network"][2]
    assert secret not in checks["secret"][2] and checks["secret"][2].count("hidden") == 2
    assert "WROTE" not in checks["escape"][2] and not (home / "written").exists()
    assert (home / "canary").read_text() == "alive" and (home / "secret").exists()
    assert checks["base_exception"][1] == "timeout" and checks["base_exception"][3] < 5
    assert checks["infinite_loop"][1] == "timeout" and checks["infinite_loop"][3] < 5
    assert checks["output"][0] == "error" and checks["output"][3] < 10  # EFBIG at 1 MiB
    assert checks["fill"][2].startswith("stopped 28 ")  # ENOSPC at the working folder's cap
    assert int(checks["fill"][2].split()[-1]) <= 16 << 20
    assert checks["kill_parent"][0] in ("passed", "error", "timeout")  # and the script went on
    leftovers = [
        entry.name
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _cmdline_has(entry, token)
    ]
    assert leftovers == []


def _cmdline_has(entry: Path, token: str) -> bool:
    try:
        return token.encode() in (entry / "cmdline").read_bytes()
    except OSError:
        return False
