"""Installing voltx on an SSH host: wheels built here, a venv there.

The host runs the same voltx as this machine, so that a job started from here finds the same
phases and the same worker there:

1. `prepare` builds a wheel of each voltx distribution (voltx-core, voltx-backends, voltx-phases)
   and of each plugin the user lists, with ``pip wheel --no-deps`` from its source folder: the
   folder an editable or local install came from, or a path given directly. Wheels are cached
   under ``$VOLTX_CACHE_DIR/ssh-wheels`` by the sha256 of the source folder, so an unchanged
   package is built once. A distribution installed from an index, with no source here, is
   installed on the host by its exact version (``name==version``) instead.
2. `install` copies the wheels to ``<remote_root>/wheels``, creates ``<remote_root>/venv`` with the
   host's python (``--system-site-packages`` on request: a GPU image's own torch is then used
   instead of a second download), installs the wheels in it, and their dependencies from the
   host's package index (its pip configuration). It writes a marker file with the wheels' sha256
   last, and skips everything when the marker already names the same wheels.

    shipment = prepare(DEFAULT_PACKAGES, plugins=["./my-plugin"])
    installed = install(transport, "/home/me/.voltx", "python3", shipment)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.errors import BackendError
from voltx_backends.ssh.transport import SSHTransport

log = structlog.get_logger(__name__)

DEFAULT_PACKAGES = ("voltx-core", "voltx-backends", "voltx-phases")
MARKER_FILE = "voltx-bootstrap.json"
MARKER_FORMAT = "voltx-ssh-bootstrap/1"
VENV_DIR = "venv"
WHEELS_DIR = "wheels"
# The first install on a GPU host may download torch: gigabytes.
DEFAULT_INSTALL_TIMEOUT_S = 1800.0
BUILD_TIMEOUT_S = 600.0
# Folders that are never part of a package's source (build output, caches, environments).
_SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        "build",
        "dist",
        "node_modules",
    }
)


class BootstrapError(BackendError):
    """voltx could not be built here or installed on the host."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ssh")


@attrs.frozen
class Shipment:
    """What goes to the host: wheel files built here, and requirements pip resolves there."""

    wheels: tuple[Path, ...]
    requirements: tuple[str, ...] = ()

    def marker(self, system_site_packages: bool, pip_args: Sequence[str]) -> dict[str, Any]:
        """The marker that says this exact shipment is installed."""
        return {
            "format": MARKER_FORMAT,
            "wheels": {wheel.name: _sha256(wheel) for wheel in self.wheels},
            "requirements": list(self.requirements),
            "system_site_packages": system_site_packages,
            "pip_args": list(pip_args),
        }


def default_cache_dir() -> Path:
    """Where built wheels are kept: ``$VOLTX_CACHE_DIR/ssh-wheels`` (``~/.cache/voltx``)."""
    configured = os.environ.get("VOLTX_CACHE_DIR")
    base = Path(configured) if configured else Path.home() / ".cache" / "voltx"
    return base / "ssh-wheels"


def prepare(
    packages: Iterable[str] = DEFAULT_PACKAGES,
    plugins: Iterable[str] = (),
    cache_dir: Path | None = None,
) -> Shipment:
    """Build (or find in the cache) the wheels of `packages` and `plugins`.

    Each entry is a distribution name (``voltx-core``), a source folder (``./my-plugin``, one
    with a ``pyproject.toml`` or ``setup.py``), or a wheel file.
    """
    cache = cache_dir or default_cache_dir()
    wheels: list[Path] = []
    requirements: list[str] = []
    for entry in (*packages, *plugins):
        path = Path(entry).expanduser()
        if entry.endswith(".whl") and path.is_file():
            wheels.append(path.resolve())
            continue
        if path.is_dir():
            wheels.append(build_wheel(path.resolve(), cache))
            continue
        if "/" in entry or entry.startswith("."):
            raise BootstrapError(f"plugin path {entry} is neither a source folder nor a wheel")
        source, requirement = locate_distribution(entry)
        if source is not None:
            wheels.append(build_wheel(source, cache))
        else:
            requirements.append(requirement)
    return Shipment(tuple(wheels), tuple(requirements))


def locate_distribution(name: str) -> tuple[Path | None, str]:
    """The source folder an installed distribution came from (if local), and its pinned name."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise BootstrapError(
            f"{name} is not installed here; install it, or give its source folder or wheel"
        ) from None
    requirement = f"{dist.metadata['Name']}=={dist.version}"
    text = dist.read_text("direct_url.json")
    if not text:
        return None, requirement
    try:
        origin = json.loads(text)
    except ValueError:
        return None, requirement
    url = str(origin.get("url", ""))
    if "dir_info" not in origin or not url.startswith("file://"):
        return None, requirement
    folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    return (folder if folder.is_dir() else None), requirement


def source_hash(folder: Path) -> str:
    """sha256 over a source folder's files: their paths and contents, build output left out."""
    digest = hashlib.sha256()
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(
            f for f in folders if f not in _SKIPPED_FOLDERS and not f.endswith(".egg-info")
        )
        for name in sorted(files):
            path = Path(current) / name
            if path.is_symlink() or name.endswith((".pyc", ".pyo")):
                continue
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(_sha256(path).encode() + b"\n")
    return digest.hexdigest()


def build_wheel(source: Path, cache_dir: Path) -> Path:
    """The wheel of the package in `source`, built with ``pip wheel --no-deps`` or cached."""
    target = cache_dir / f"{source.name}-{source_hash(source)[:20]}"
    cached = sorted(target.glob("*.whl"))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(building),
        ]
        # Building in isolation downloads the build backend; when it is installed here, use it.
        if _build_backend_installed(source):
            argv.append("--no-build-isolation")
        completed = subprocess.run(
            [*argv, str(source)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
        if completed.returncode != 0:
            raise BootstrapError(
                f"building a wheel of {source} failed: {completed.stderr.strip()[-2000:]}"
            )
        built = sorted(building.glob("*.whl"))
        if len(built) != 1:
            raise BootstrapError(f"building {source} gave {len(built)} wheels, expected one")
        # Another process may have built the same source meanwhile: either copy will do.
        with contextlib.suppress(OSError):
            building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.debug("wheel built", source=str(source), wheel=str(next(target.glob("*.whl"))))
    return next(target.glob("*.whl"))


def _build_backend_installed(source: Path) -> bool:
    pyproject = source / "pyproject.toml"
    backend = "setuptools.build_meta:__legacy__"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return False
        backend = str(data.get("build-system", {}).get("build-backend", backend))
    module = backend.split(":")[0].split(".")[0]
    return importlib.util.find_spec(module) is not None


def installed_marker(transport: SSHTransport, root: str) -> dict[str, Any] | None:
    """The marker of what the host's venv holds, or None when there is none."""
    marker = f"{root}/{VENV_DIR}/{MARKER_FILE}"
    result = transport.run(f"cat {shlex.quote(marker)} 2>/dev/null", idempotent=True)
    if result.returncode != 0:
        return None
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def install(
    transport: SSHTransport,
    root: str,
    python: str,
    shipment: Shipment,
    *,
    system_site_packages: bool = False,
    pip_args: Sequence[str] = (),
    timeout: float = DEFAULT_INSTALL_TIMEOUT_S,
) -> bool:
    """Install `shipment` into ``root/venv`` on the host; False when it was there already."""
    marker = shipment.marker(system_site_packages, pip_args)
    if installed_marker(transport, root) == marker:
        log.debug("host already bootstrapped", host=transport.destination)
        return False
    log.info("installing voltx on the host", host=transport.destination, root=root)
    wheels_dir = f"{root}/{WHEELS_DIR}"
    with tempfile.TemporaryDirectory(prefix="voltx-wheels-") as folder:
        for wheel in shipment.wheels:
            shutil.copyfile(wheel, Path(folder) / wheel.name)
        transport.check(
            f"rm -rf {shlex.quote(wheels_dir)} && mkdir -p {shlex.quote(wheels_dir)}",
            what="preparing the wheel folder",
        )
        transport.put(Path(folder), wheels_dir, [wheel.name for wheel in shipment.wheels])
    transport.check(
        _install_script(root, python, shipment, system_site_packages, pip_args),
        input=json.dumps(marker, indent=1, sort_keys=True).encode(),
        timeout=timeout,
        what="installing voltx into the host's venv",
    )
    return True


def _install_script(
    root: str,
    python: str,
    shipment: Shipment,
    system_site_packages: bool,
    pip_args: Sequence[str],
) -> str:
    venv = f"{root}/{VENV_DIR}"
    wheels = " ".join(shlex.quote(f"{root}/{WHEELS_DIR}/{w.name}") for w in shipment.wheels)
    requirements = " ".join(shlex.quote(r) for r in shipment.requirements)
    extra = " ".join(shlex.quote(arg) for arg in pip_args)
    pip = f'"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q {extra}'
    create = "--system-site-packages " if system_site_packages else ""
    # The same version may be installed with other content (a changed checkout), so the wheels
    # are reinstalled without their dependencies first; the second pass brings the dependencies.
    steps = []
    if wheels:
        steps.append(f"{pip} --no-deps --force-reinstall {wheels} </dev/null")
    if wheels or requirements:
        steps.append(f"{pip} {wheels} {requirements} </dev/null")
    body = "\n".join(steps)
    return f"""
set -e
venv={shlex.quote(venv)}
rm -f "$venv/{MARKER_FILE}"
if [ ! -x "$venv/bin/python" ]; then
    {shlex.quote(python)} -m venv {create}"$venv" </dev/null
fi
{body}
cat > "$venv/{MARKER_FILE}.tmp"
mv -f "$venv/{MARKER_FILE}.tmp" "$venv/{MARKER_FILE}"
"""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
