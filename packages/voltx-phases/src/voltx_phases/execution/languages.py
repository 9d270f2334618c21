"""The languages the sandbox runs: where each toolchain lives, how it compiles and runs.

Python, JavaScript (node), Java, Rust and Go. Every compile step runs inside the sandbox too
(a compiler reading hostile source is untrusted work), with the language's own time and memory
budget. A toolchain that is missing is a one-line `ToolchainMissingError` naming the Debian
package to install. Programs follow MultiPL-E's layout (`docs/sandbox.md`): the solution and a
test are one source file, the test's assertions fail with the language's usual error.

Under bubblewrap a runtime installed outside ``/usr`` (pyenv's Python and rustup's toolchains
live under ``/root`` when root installed them) is bound read-only below ``/opt/voltx``, so no
part of a home folder is visible; both runtimes find their libraries relative to their binary.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs

from voltx_phases.execution.isolation import (
    RUNTIME_ROOT,
    Mount,
    SandboxUnavailableError,
    ToolchainMissingError,
)
from voltx_phases.execution.limits import SandboxLimits

_GIB = 1 << 30
# In a toolchain's environment, stands for the run's working folder (Go wants absolute paths).
WORK_FOLDER = "{work}"


@attrs.frozen
class Toolchain:
    """One language's commands as the sandbox runs them, and what it must be able to read."""

    run_argv: tuple[str, ...]
    compile_argv: tuple[str, ...] | None = None
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Language:
    """How the sandbox builds and runs a program in one language, and reads its failures."""

    name: str
    source_file: str
    # (limits, isolated) -> the toolchain; `isolated` says whether paths are the sandbox's view.
    resolve: Callable[[SandboxLimits, bool], Toolchain]
    # Compilers are slower than the programs they build: their own wall clock and memory.
    compile_timeout_s: float = 0.0
    compile_memory_bytes: int = 0
    # RLIMIT_FSIZE of the compile step: a Rust or Go binary is several MiB.
    compile_file_size_bytes: int = 256 << 20
    # Added to the run's wall clock: a JVM needs about half a second before main() starts.
    startup_s: float = 0.0
    # Text in stderr or stdout that means an assertion or a comparison failed.
    wrong_answer_markers: tuple[str, ...] = ()
    # Text that means the program ran out of its address space.
    memory_markers: tuple[str, ...] = ()
    # Python reports a syntax error at run time; other languages have a compile step.
    syntax_markers: tuple[str, ...] = ()


def _placed(host: Path, name: str, isolated: bool) -> tuple[Path, tuple[Mount, ...]]:
    """Where the host folder `host` is seen from the program, and the mount that shows it."""
    if not isolated or host.is_relative_to("/usr"):
        return host, ()
    inside = Path(RUNTIME_ROOT) / name
    return inside, (Mount(str(host), str(inside)),)


def _inside(path: str, host_root: Path, inside_root: Path) -> str:
    return str(inside_root / Path(path).relative_to(host_root))


_PYTHON_FACTS = """
import json, os, sys, sysconfig
base = sys.base_prefix
print(json.dumps({
    "base_prefix": base,
    "executable": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
    "purelib": sysconfig.get_paths()["purelib"],
    "base_purelib": sysconfig.get_path("purelib", vars={"base": base, "platbase": base}),
    "libdir": sysconfig.get_config_var("LIBDIR") or "",
    "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
}))
"""


@functools.cache
def _python_facts(python: str) -> dict[str, object]:
    try:
        done = subprocess.run(
            [python, "-I", "-c", _PYTHON_FACTS], capture_output=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        raise ToolchainMissingError("Python", "python3") from None
    facts: dict[str, object] = json.loads(done.stdout)
    return facts


@functools.lru_cache(maxsize=32)
def _python(limits: SandboxLimits, isolated: bool) -> Toolchain:
    # Remembered: every Python program resolves it, and the answer depends only on the limits'
    # interpreter and site flag, whose facts are themselves read once.
    flags = ["-I", "-X", "utf8"] + ([] if limits.site_packages else ["-S"])
    if not isolated:
        return Toolchain(run_argv=(limits.python, *flags, "main.py"))
    facts = _python_facts(limits.python)
    base = Path(str(facts["base_prefix"]))
    prefix, mounts = _placed(base, "python", isolated)
    env: tuple[tuple[str, str], ...] = ()
    if prefix != base and facts["shared"] and str(facts["libdir"]).startswith(str(base)):
        # The interpreter's RUNPATH names the host prefix; point the loader at the new one.
        env = (("LD_LIBRARY_PATH", _inside(str(facts["libdir"]), base, prefix)),)
    packages = str(facts["purelib"])
    if limits.site_packages and prefix != base and packages != facts["base_purelib"]:
        # A virtual environment's packages, shown where the base interpreter's site looks.
        target = _inside(str(facts["base_purelib"]), base, prefix)
        mounts += (Mount(packages, target),)
    executable = _inside(str(facts["executable"]), base, prefix)
    return Toolchain(run_argv=(executable, *flags, "main.py"), mounts=mounts, env=env)


def _which(command: str, language: str, package: str) -> Path:
    found = shutil.which(command)
    if found is None:
        raise ToolchainMissingError(language, package)
    return Path(os.path.realpath(found))


def _javascript(limits: SandboxLimits, isolated: bool) -> Toolchain:
    node = _which("node", "JavaScript", "nodejs")
    prefix, mounts = _placed(node.parent.parent, "node", isolated)
    # V8 sizes its heap from the machine, not from RLIMIT_AS: cap it below the limit so a big
    # allocation is a clean "heap out of memory" rather than a failed reservation.
    heap_mib = max(64, limits.memory_bytes // (1 << 20) // 2)
    argv = (_inside(str(node), node.parent.parent, prefix), f"--max-old-space-size={heap_mib}")
    return Toolchain(run_argv=(*argv, "main.js"), mounts=mounts)


# The JVM reserves far more address space than it uses; these keep it under RLIMIT_AS.
_JVM_FLAGS = (
    "-Xmx256m",
    "-XX:ReservedCodeCacheSize=32m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:MaxMetaspaceSize=128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
)


def _java(limits: SandboxLimits, isolated: bool) -> Toolchain:
    javac = _which("javac", "Java", "default-jdk-headless")
    home = javac.parent.parent
    prefix, mounts = _placed(home, "jdk", isolated)
    if isolated:
        # Debian's JDK links its conf/ files (java.security) into /etc/java-<version>-openjdk.
        mounts += tuple(Mount(str(p), str(p)) for p in sorted(Path("/etc").glob("java-*")))
    bin_dir = prefix / "bin"
    return Toolchain(
        compile_argv=(
            str(bin_dir / "javac"),
            *(f"-J{flag}" for flag in _JVM_FLAGS),
            *("-d", ".", "Problem.java"),
        ),
        run_argv=(str(bin_dir / "java"), *_JVM_FLAGS, "-ea", "-cp", ".", "Problem"),
        mounts=mounts,
    )


@functools.cache
def _rust_sysroot() -> Path:
    rustc = shutil.which("rustc")
    if rustc is None:
        raise ToolchainMissingError("Rust", "rustc")
    try:
        done = subprocess.run(
            [rustc, "--print", "sysroot"], capture_output=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        raise ToolchainMissingError("Rust", "rustc") from None
    return Path(done.stdout.decode().strip())


def _rust(limits: SandboxLimits, isolated: bool) -> Toolchain:
    sysroot = _rust_sysroot()
    linker = _which("gcc", "Rust", "gcc")
    prefix, mounts = _placed(sysroot, "rust", isolated)
    compile_argv: tuple[str, ...] = (str(prefix / "bin" / "rustc"), "--edition", "2021")
    compile_argv += ("-C", f"linker={linker}", "-C", "debuginfo=0", "-o", "main", "main.rs")
    return Toolchain(run_argv=("./main",), compile_argv=compile_argv, mounts=mounts)


def _go(limits: SandboxLimits, isolated: bool) -> Toolchain:
    go = _which("go", "Go", "golang-go")
    root = go.parent.parent
    prefix, mounts = _placed(root, "go", isolated)
    # The build cache and module folders go to the run's own /tmp; cgo is off, so no C
    # compiler runs, and no toolchain download or telemetry is attempted.
    env = (
        ("GOROOT", str(prefix)),
        ("GOCACHE", "/tmp/go-cache" if isolated else f"{WORK_FOLDER}/.go-cache"),
        ("GOPATH", "/tmp/go" if isolated else f"{WORK_FOLDER}/.go-path"),
        ("HOME", "/tmp" if isolated else WORK_FOLDER),
        ("GO111MODULE", "off"),
        ("CGO_ENABLED", "0"),
        ("GOTOOLCHAIN", "local"),
        ("GOFLAGS", "-buildvcs=false"),
    )
    compile_argv = (str(prefix / "bin" / "go"), "test", "-c", "-o", "main.test", "main_test.go")
    return Toolchain(run_argv=("./main.test",), compile_argv=compile_argv, mounts=mounts, env=env)


LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python",
        source_file="main.py",
        resolve=_python,
        wrong_answer_markers=("AssertionError",),
        memory_markers=("MemoryError",),
        syntax_markers=("SyntaxError", "IndentationError", "TabError"),
    ),
    "javascript": Language(
        name="javascript",
        source_file="main.js",
        resolve=_javascript,
        startup_s=0.5,
        wrong_answer_markers=("AssertionError",),
        memory_markers=("heap out of memory", "Fatal process out of memory"),
        syntax_markers=("SyntaxError:",),
    ),
    "java": Language(
        name="java",
        source_file="Problem.java",
        resolve=_java,
        compile_timeout_s=60.0,
        compile_memory_bytes=2 * _GIB,
        startup_s=1.0,
        wrong_answer_markers=("java.lang.AssertionError",),
        memory_markers=("java.lang.OutOfMemoryError", "Could not reserve enough space"),
    ),
    "rust": Language(
        name="rust",
        source_file="main.rs",
        resolve=_rust,
        compile_timeout_s=60.0,
        compile_memory_bytes=2 * _GIB,
        wrong_answer_markers=("assertion failed", "assertion `left == right` failed"),
        memory_markers=("memory allocation of",),
    ),
    "go": Language(
        name="go",
        source_file="main_test.go",
        resolve=_go,
        compile_timeout_s=90.0,
        compile_memory_bytes=2 * _GIB,
        wrong_answer_markers=("--- FAIL",),
        memory_markers=("out of memory",),
    ),
}


def language(name: str) -> Language:
    """The language called `name` (``python``, ``javascript``, ``java``, ``rust``, ``go``)."""
    try:
        return LANGUAGES[name.lower()]
    except KeyError:
        known = ", ".join(LANGUAGES)
        raise SandboxUnavailableError(
            f"the sandbox has no language {name!r} (known: {known})"
        ) from None


__all__ = ["LANGUAGES", "Language", "Toolchain", "language"]
