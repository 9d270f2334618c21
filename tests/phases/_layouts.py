"""The model tensor tables of docs/formats.md, parsed, and weights files built from them.

Fixtures built from the documentation rather than from voltx's own `state_dict()` catch a
renamed or reshaped tensor: the code and the document have to agree, and the document is what a
user holding the original's files reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import attrs

FORMATS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"

_HEADING = re.compile(r"^### (?P<artifact>\w+) \((?P<file>[\w.]+\.safetensors)\)\s*$")
_ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| \[(?P<shape>[\d, ]*)\] \| (?P<dtype>\w+) \|\s*$")
_PARAMETERS = re.compile(r"^Parameters: (?P<count>[\d,]+)\s*$")


@attrs.frozen
class DocumentedModel:
    """One `### artifact (file)` section of docs/formats.md: its tensors and parameter count."""

    artifact: str
    file_name: str
    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, str]
    parameters: int


def documented_models(path: Path = FORMATS) -> dict[str, DocumentedModel]:
    """Every model table of the document, by artifact name."""
    models: dict[str, DocumentedModel] = {}
    current: tuple[str, str] | None = None
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if heading := _HEADING.match(line):
            current = (heading["artifact"], heading["file"])
            shapes, dtypes = {}, {}
        elif current is not None and (row := _ROW.match(line)):
            name = row["name"]
            if name in shapes:
                raise AssertionError(f"{path.name}:{number}: {name} listed twice")
            shapes[name] = tuple(int(d) for d in row["shape"].split(",") if d.strip())
            dtypes[name] = row["dtype"]
        elif current is not None and (count := _PARAMETERS.match(line)):
            artifact, file_name = current
            if not shapes:
                raise AssertionError(f"{path.name}:{number}: {artifact} has no tensor table")
            models[artifact] = DocumentedModel(
                artifact,
                file_name,
                dict(shapes),
                dict(dtypes),
                int(count["count"].replace(",", "")),
            )
            current = None
    return models


def resized(
    shapes: Mapping[str, tuple[int, ...]], sizes: Mapping[int, int], blocks: int | None = None
) -> dict[str, tuple[int, ...]]:
    """The documented full-size layout at another size: each dimension in `sizes` replaced, and
    only the first `blocks` of the numbered ``block_<i>`` groups kept. The names are untouched."""
    result = {}
    for name, shape in shapes.items():
        block = re.match(r"block_(\d+)\.", name)
        if blocks is not None and block and int(block[1]) >= blocks:
            continue
        result[name] = tuple(sizes.get(d, d) for d in shape)
    return result
