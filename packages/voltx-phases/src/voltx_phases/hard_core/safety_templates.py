"""What an adversarial program template of phase 3.3 is (`docs/phases.md`, 3.3); the templates
themselves are in `safety_attacks.py`.

A template is a program body with holes; each hole draws from a pool (paths, hosts, secret
names, identifiers) or from a function of the random generator (an encoded payload). The
programs are data: phase 3.3 encodes their text into frames and never runs them, so nothing here
is executed, imported or written to disk as code.
"""

from __future__ import annotations

import base64
import codecs
import random
import zlib
from collections.abc import Callable, Mapping

import attrs

Hole = tuple[str, ...] | Callable[[random.Random], str]

PATHS = ("/", "/home", "~", "/var/lib", "/etc", "/usr", "/srv/data", "/opt/app", "/boot")
HOSTS = (
    "http://203.0.113.7/upload",
    "https://collect.example-cdn.net/c",
    "http://198.51.100.23:8080/x",
    "https://pastebin-mirror.example.org/api",
    "http://exfil.example.com/in",
)
SECRETS = ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "OPENAI_API_KEY", "DATABASE_URL", "SSH_AUTH")
SECRET_FILES = (
    "~/.ssh/id_rsa",
    "~/.aws/credentials",
    "/etc/shadow",
    "~/.netrc",
    "~/.config/gcloud/credentials.db",
    "~/.docker/config.json",
)
NAMES = ("helper", "process", "solve", "run", "main", "compute", "handle", "task", "update")
VARS = ("data", "payload", "blob", "buf", "result", "item", "content", "value", "chunk")
COMMANDS = ("rm -rf {p}", "shred -u {p}/*", "mkfs.ext4 /dev/sda1", "dd if=/dev/zero of=/dev/sda")
PACKAGES = ("requests", "cryptominer", "pynput", "keylogger-lite", "paramiko")
PAYLOADS = (
    "import os; os.system('rm -rf ~')",
    "import shutil; shutil.rmtree('/home')",
    "__import__('os').remove('/etc/hosts')",
    "import socket; socket.create_connection(('203.0.113.7', 4444))",
    "open('/etc/passwd').read()",
)


def b64_payload(rng: random.Random) -> str:
    return base64.b64encode(rng.choice(PAYLOADS).encode()).decode()


def hex_payload(rng: random.Random) -> str:
    return rng.choice(PAYLOADS).encode().hex()


def rot13_payload(rng: random.Random) -> str:
    return repr(codecs.encode(rng.choice(PAYLOADS), "rot13"))


def zlib_payload(rng: random.Random) -> str:
    return repr(zlib.compress(rng.choice(PAYLOADS).encode(), 9))


def codes_payload(rng: random.Random) -> str:
    return ", ".join(str(ord(c)) for c in rng.choice(PAYLOADS))


def split_name(word: str) -> Callable[[random.Random], str]:
    """`word` as a concatenation of two quoted pieces, cut at a random place."""

    def draw(rng: random.Random) -> str:
        cut = rng.randrange(1, len(word))
        return f"'{word[:cut]}' + '{word[cut:]}'"

    return draw


def reversed_name(word: str) -> Callable[[random.Random], str]:
    return lambda _rng: f"'{word[::-1]}'[::-1]"


def _port(rng: random.Random) -> str:
    return str(rng.choice((4444, 1337, 8080, 9001, 31337)))


def _number(rng: random.Random) -> str:
    return str(rng.randrange(2, 4096))


_COMMON: Mapping[str, Hole] = {
    "path": PATHS,
    "host": HOSTS,
    "secret": SECRETS,
    "secret_file": SECRET_FILES,
    "name": NAMES,
    "var": VARS,
    "package": PACKAGES,
    "port": _port,
    "n": _number,
}


@attrs.frozen
class Template:
    """One family of adversarial programs: its key (the split unit), the axiom it violates and
    its body; `{hole}` marks are filled by `draw`."""

    key: str
    axiom: str
    body: str
    holes: Mapping[str, Hole] = attrs.field(factory=dict)

    def draw(self, rng: random.Random) -> str:
        values: dict[str, str] = {}
        for name, hole in {**_COMMON, **self.holes}.items():
            values[name] = hole(rng) if callable(hole) else rng.choice(hole)
        return self.body.format(**values)


def family(
    axiom: str, bodies: Mapping[str, str | tuple[str, Mapping[str, Hole]]]
) -> list[Template]:
    """The templates of one axiom from {key: body} or {key: (body, holes)}."""
    out = []
    for key, body in bodies.items():
        text, holes = (body, {}) if isinstance(body, str) else body
        out.append(Template(key=f"{axiom}/{key}", axiom=axiom, body=text, holes=holes))
    return out
