"""The job protocol's remote half: POSIX sh scripts that the SSH backend runs on the host.

The local backend reads a job folder with Python (`voltx_backends._jobs`); on a remote host the
same reads are small shell scripts, one ssh round trip each, and the answers go through the same
pure functions (`_jobs.decide_status`). Every value put into a script is quoted with
`shlex.quote` (job ids and file names are checked by `_jobs` too). The scripts need only what any
Linux or macOS host has: sh, cat, tail, head, tar, kill, sleep, and ``setsid`` or a python3.

A job's environment is never on a command line: `env_file` renders it as shell assignments that
travel in the job folder's tar stream (on ssh's stdin) into a file of mode 0600, which the
detached job reads and deletes before its command starts.
"""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import time
from collections.abc import Mapping

import attrs

from voltx.backend import JobState, JobStatus
from voltx.errors import BackendError
from voltx_backends import _jobs

ENV_FILE = "env"
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# read_file's exit status for "no such file" (any other failure is an error).
ABSENT_RC = 3
# launch's exit status when the job folder exists already.
EXISTS_RC = 17
# How long cancel waits for the wrapper to write its pid, when called right after the start.
PID_WAIT_TENTHS = 50

# Whether pid $1 runs with the job id $2 as a word of its command line (not a reused pid). A
# zombie has an empty command line, so a dead-but-unreaped wrapper does not count.
_HAS_MARKER = r"""
has_marker() {
    if [ -d /proc/self ]; then
        [ -r "/proc/$1/cmdline" ] || return 1
        tr '\000' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$2"
    else
        ps -o args= -p "$1" 2>/dev/null | tr ' ' '\n' | grep -qxF -- "$2"
    fi
}
"""

# Whether any live process is left in group $1. /proc is read with shell builtins only (this runs
# every tenth of a second), and zombies do not count: in a container whose init never reaps
# orphans they would keep a dead group "alive" forever.
_GROUP_ALIVE = r"""
group_alive() {
    if [ -d /proc/self ]; then
        for stat in /proc/[0-9]*/stat; do
            { read -r line < "$stat"; } 2>/dev/null || continue
            rest=${line##*") "}
            set -- $rest
            if [ "$3" = "$group" ] && [ "$1" != Z ] && [ "$1" != X ]; then
                return 0
            fi
        done
        return 1
    fi
    kill -0 "-$group" 2>/dev/null
}
wait_gone() {
    n=0
    while group_alive; do
        [ "$n" -ge "$1" ] && return 1
        sleep 0.1
        n=$((n + 1))
    done
    return 0
}
"""


def env_file(env: Mapping[str, str]) -> bytes:
    """The job's environment as ``export NAME='value'`` lines for ``sh`` to read."""
    lines = []
    for name, value in sorted(env.items()):
        if not ENV_NAME_PATTERN.fullmatch(name):
            raise BackendError(f"invalid environment variable name {name!r}", "ssh")
        if "\0" in value:
            raise BackendError(f"environment variable {name} holds a NUL byte", "ssh")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines).encode()


def folder_archive(files: Mapping[str, bytes]) -> bytes:
    """A tar archive of the job folder's files, each of mode 0600 (folders 0700)."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folders: set[str] = set()
        for path, data in sorted(files.items()):
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
                    archive.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o600, now
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def launch(jobs_dir: str, job_id: str, python: str) -> str:
    """Unpack the folder's tar (stdin) into a new job folder and start the wrapper detached.

    The start is wrapped in braces with every descriptor redirected, so that ssh returns at once
    instead of waiting on a background process that still holds the channel. ``setsid`` makes the
    wrapper the leader of a new session and process group (so cancel reaches all of it, and a
    dropped connection sends it no SIGHUP); a host without ``setsid`` (macOS) gets the same from
    its python.
    """
    _jobs.check_job_id(job_id, "ssh")
    start = f'. ./{ENV_FILE} && rm -f ./{ENV_FILE} && exec sh {_jobs.RUN_SCRIPT} "$0"'
    detach = "import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])"
    return f"""
set -e
umask 077
jobs={shlex.quote(jobs_dir)}
mkdir -p "$jobs"
folder="$jobs/{job_id}"
if ! mkdir "$folder" 2>/dev/null; then
    echo "job folder $folder already exists" >&2
    exit {EXISTS_RC}
fi
cd "$folder"
tar -xmf -
start={shlex.quote(start)}
if command -v setsid >/dev/null 2>&1; then
    {{ setsid nohup sh -c "$start" {job_id} </dev/null >/dev/null 2>&1 & }}
else
    {{ nohup {shlex.quote(python)} -c {shlex.quote(detach)} sh -c "$start" {job_id} \
        </dev/null >/dev/null 2>&1 & }}
fi
echo started
"""


def status(job_dir: str, job_id: str) -> str:
    """Print what the folder shows: ``exited`` and the exit code, or the pid and its liveness."""
    return f"""{_HAS_MARKER}
folder={shlex.quote(job_dir)}
if [ ! -f "$folder/{_jobs.RUN_SCRIPT}" ]; then echo missing; exit 0; fi
if [ -f "$folder/{_jobs.EXIT_CODE_FILE}" ]; then
    echo exited; cat "$folder/{_jobs.EXIT_CODE_FILE}"; exit 0
fi
pid=$(cat "$folder/{_jobs.PID_FILE}" 2>/dev/null || true)
running=0
if [ -n "$pid" ] && has_marker "$pid" {job_id}; then running=1; fi
# The job may have finished between the two reads: look for its exit code once more.
if [ "$running" = 0 ] && [ -f "$folder/{_jobs.EXIT_CODE_FILE}" ]; then
    echo exited; cat "$folder/{_jobs.EXIT_CODE_FILE}"; exit 0
fi
now=$(date +%s)
written=$(stat -c %Y "$folder/{_jobs.RUN_SCRIPT}" 2>/dev/null \
    || stat -f %m "$folder/{_jobs.RUN_SCRIPT}")
echo "pending ${{pid:--}} $running $((now - written))"
"""


def parse_status(output: str, job_dir: str) -> JobStatus:
    """The job's status from what `status` printed."""
    first, _, rest = output.partition("\n")
    words = first.split()
    if words == ["missing"]:
        return JobStatus(JobState.LOST, detail=f"no job folder at {job_dir}")
    if words == ["exited"]:
        return _jobs.decide_status(rest, pid_known=True, pid_running=False, age_s=0.0)
    if len(words) == 4 and words[0] == "pending":
        _, pid, running, age = words
        return _jobs.decide_status(
            None, pid_known=pid != "-", pid_running=running == "1", age_s=float(age)
        )
    raise BackendError(f"unexpected answer from the job status script: {output[:200]!r}", "ssh")


def read_log(job_dir: str, offset: int, limit: int = _jobs.LOG_CHUNK_BYTES) -> str:
    """Print at most `limit` bytes of the log from byte `offset` (nothing if there is no log)."""
    log = f"{job_dir}/{_jobs.LOG_FILE}"
    return f"""
log={shlex.quote(log)}
[ -f "$log" ] || exit 0
tail -c +{int(offset) + 1} "$log" | head -c {int(limit)}
"""


def read_file(job_dir: str, name: str) -> str:
    """Print one plain file of the job folder; exit `ABSENT_RC` when it is not there."""
    _jobs.check_file_name(name, "ssh")
    path = shlex.quote(f"{job_dir}/{name}")
    return f"[ -f {path} ] || exit {ABSENT_RC}\ncat {path}\n"


def small_files(job_dir: str, max_bytes: int) -> str:
    """Print the names of the job folder's plain files of at most `max_bytes`, one a line."""
    return f"""cd {shlex.quote(job_dir)} || exit 0
for f in * .[!.]*; do
    [ -f "$f" ] || continue
    [ "$(wc -c < "$f")" -le {int(max_bytes)} ] && printf '%s\\n' "$f"
done
exit 0
"""


def cancel(job_dir: str, job_id: str, grace_s: float) -> str:
    """TERM the job's process group, then KILL what is left after `grace_s`."""
    grace_tenths = max(0, round(grace_s * 10))
    kill_wait_tenths = round(_jobs.KILL_WAIT_S * 10)
    return f"""{_HAS_MARKER}{_GROUP_ALIVE}
folder={shlex.quote(job_dir)}
exit_code="$folder/{_jobs.EXIT_CODE_FILE}"
pid_file="$folder/{_jobs.PID_FILE}"
[ -f "$exit_code" ] && exit 0
# Called right after the start, the wrapper may not have written its pid yet.
n=0
while [ ! -f "$pid_file" ] && [ ! -f "$exit_code" ] && [ "$n" -lt {PID_WAIT_TENTHS} ]; do
    sleep 0.1
    n=$((n + 1))
done
[ -f "$exit_code" ] && exit 0
group=$(cat "$pid_file" 2>/dev/null || true)
[ -n "$group" ] || exit 0
# Only a process that carries the job id is signalled: a reused pid is left alone.
has_marker "$group" {job_id} || exit 0
# "-s TERM --": dash reads "kill -TERM -- -PID" as a bad number; this form every sh accepts.
kill -s TERM -- "-$group" 2>/dev/null || exit 0
wait_gone {grace_tenths} && exit 0
kill -s KILL -- "-$group" 2>/dev/null || true
wait_gone {kill_wait_tenths} || true
"""


@attrs.frozen
class HostInfo:
    """What one probe of the host found: its home, its resources and its tools."""

    home: str
    root: str
    cpu_cores: int
    ram_gb: float
    disk_gb: float
    gpu_memories_gb: tuple[float, ...]
    has_setsid: bool
    # The newest CUDA the driver supports ("12.4", from nvidia-smi's header); "" when unknown.
    cuda: str = ""


def probe(remote_root: str) -> str:
    """Print, as ``key=value`` lines, what `parse_probe` reads."""
    return f"""
root={shlex.quote(remote_root)}
case "$root" in "~") root="$HOME" ;; "~/"*) root="$HOME/${{root#"~/"}}" ;; esac
echo "home=$HOME"
echo "root=$root"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
if [ -r /proc/meminfo ]; then
    awk '/^MemTotal:/ {{ print "mem_kb=" $2 }}' /proc/meminfo
else
    echo "mem_kb=$(( $(sysctl -n hw.memsize 2>/dev/null || echo 0) / 1024 ))"
fi
[ -r /sys/fs/cgroup/memory.max ] && echo "cgroup_mem=$(cat /sys/fs/cgroup/memory.max)"
folder="$root"
while [ ! -d "$folder" ]; do folder=$(dirname "$folder"); done
df -Pk "$folder" | awk 'NR == 2 {{ print "disk_kb=" $4 }}'
command -v setsid >/dev/null 2>&1 && echo setsid=1
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null \
        | sed 's/^/gpu_mib=/'
    nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\\([0-9][0-9.]*\\).*/cuda=\\1/p' | head -n 1
fi
true
"""


def parse_probe(output: str) -> HostInfo:
    """The host's facts from what `probe` printed."""
    values: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip(), []).append(value.strip())

    def number(key: str, default: float = 0.0) -> float:
        try:
            return float(values[key][0])
        except (KeyError, ValueError):
            return default

    if "home" not in values or "root" not in values:
        raise BackendError(f"unexpected answer from the host probe: {output[:200]!r}", "ssh")
    gib_in_kb = 1024 * 1024
    ram_gb = number("mem_kb") / gib_in_kb
    cgroup = values.get("cgroup_mem", [""])[0]
    if cgroup.isdigit():
        # Inside a container MemTotal is the machine's; the cgroup limit is what we may use.
        ram_gb = min(ram_gb, int(cgroup) / 2**30) if ram_gb else int(cgroup) / 2**30
    gpus: list[float] = []
    for text in values.get("gpu_mib", []):
        try:
            gpus.append(float(text) / 1024)
        except ValueError:
            gpus.append(0.0)  # "[N/A]": the GPU is there, its memory unknown
    return HostInfo(
        home=values["home"][0],
        root=values["root"][0],
        cpu_cores=max(1, int(number("cpus", 1))),
        ram_gb=ram_gb,
        disk_gb=number("disk_kb") / gib_in_kb,
        gpu_memories_gb=tuple(gpus),
        has_setsid="setsid" in values,
        cuda=values.get("cuda", [""])[0],
    )
