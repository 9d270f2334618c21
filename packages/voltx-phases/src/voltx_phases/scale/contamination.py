"""Which benchmark problems the evaluated model was trained on, read from the store's lineage.

Every artifact's manifest records the phase that made it, that phase's resolved config and the
digest of each input (docs/formats.md, artifact manifest). Walking those records up from the
model's artifacts finds every phase run the model descends from and the problem datasets each
one trained on:

- a phase trains on the problem datasets it reads directly (1.1 and 1.2 read
  `code_training_combined`), and on the datasets its config names: 2.1 reads `problem_frames`
  and its curriculum stages name the datasets whose frames they train on;
- phase 2.0 only encodes: it reads every problem dataset, benchmarks included, to cache their
  frames, and trains nothing, so its direct inputs do not count (its consumers' configs say
  which frames were trained on).

A benchmark problem is contaminated when a training dataset holds the same problem: the same
query and the same reference solution, compared with runs of whitespace collapsed. Only exact
copies are found (a paraphrased or renamed copy is not); phase 0.2's ``combine_benchmarks``
copies HumanEval and MBPP into `code_training_combined` byte for byte, which is the case this
check exists for (docs/phases.md, 0.2 and 5.3).
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.errors import ManifestError
from voltx.store import ArtifactStore
from voltx.store.manifest import Artifact
from voltx_phases.datasets.schema import Problem

log = structlog.get_logger(__name__)

# Phases that read problem datasets only to encode them for later phases (see the docstring).
ENCODING_ONLY_PHASES = frozenset({"2.0"})


def problem_key(query: str, solution: str) -> str:
    """What identifies a problem across datasets: its query and solution, whitespace-collapsed."""
    text = " ".join(query.split()) + "\0" + " ".join(solution.split())
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class TrainingSet:
    """A problem dataset some phase upstream of the model trained on."""

    name: str
    digest: str
    trained_by: tuple[str, ...]  # the phases that trained on it, sorted


@attrs.frozen
class Contamination:
    """The training sets upstream of the model, and the benchmark problems found in them."""

    training_sets: tuple[TrainingSet, ...]
    # benchmark label -> {problem id -> names of the training sets that hold it}
    found: Mapping[str, Mapping[str, tuple[str, ...]]]
    # False when the lineage could not be read (the check then says nothing either way).
    lineage_read: bool = True

    def problems_in(self, benchmark: str) -> frozenset[str]:
        return frozenset(self.found.get(benchmark, {}))

    def to_json(self) -> dict[str, Any]:
        return {
            "lineage_read": self.lineage_read,
            "training_sets": [attrs.asdict(t) for t in self.training_sets],
            "contaminated": {
                label: {pid: list(sets) for pid, sets in sorted(ids.items())}
                for label, ids in sorted(self.found.items())
                if ids
            },
        }


def training_sets(store: ArtifactStore, model: Mapping[str, str]) -> list[TrainingSet]:
    """The problem datasets that phases upstream of the `model` artifacts (name -> digest)
    trained on, found by walking the lineage (see the module docstring)."""
    # Each manifest read once: the walks revisit the same ancestors.
    manifest = functools.cache(store.load_manifest)
    trained: dict[str, set[str]] = {}  # dataset digest -> phases
    names: dict[str, str] = {}  # dataset digest -> its name
    queue = deque(model.values())
    seen: set[str] = set()
    while queue:
        digest = queue.popleft()
        if digest in seen:
            continue
        seen.add(digest)
        lineage = manifest(digest).lineage
        phase = lineage.get("phase")
        inputs = _inputs(lineage)
        queue.extend(inputs.values())
        if not phase:
            continue
        used = {} if phase in ENCODING_ONLY_PHASES else dict(inputs)
        for name in _strings(lineage.get("config")):
            if name not in used and (found := _ancestor(manifest, inputs, name)) is not None:
                used[name] = found
        for name, used_digest in used.items():
            trained.setdefault(used_digest, set()).add(str(phase))
            names[used_digest] = name
    return sorted(
        (
            TrainingSet(names[d], d, tuple(sorted(phases)))
            for d, phases in trained.items()
            if _holds_problems(store, d)
        ),
        key=lambda t: (t.name, t.digest),
    )


def find_contamination(
    store: ArtifactStore, model: Mapping[str, str], benchmarks: Mapping[str, Sequence[Problem]]
) -> Contamination:
    """The benchmark problems (label -> problems) that a training set upstream of `model` holds."""
    sets = training_sets(store, model)
    holders: dict[str, set[str]] = {}
    for training in sets:
        for key in _keys_of(store, training.digest):
            holders.setdefault(key, set()).add(training.name)
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for label, problems in benchmarks.items():
        hits = {}
        for problem in problems:
            holding = holders.get(problem_key(problem.query, problem.solution))
            if holding:
                hits[problem.id] = tuple(sorted(holding))
        found[label] = hits
    return Contamination(tuple(sets), found)


def unknown(benchmarks: Mapping[str, Sequence[Problem]]) -> Contamination:
    """The answer when no lineage can be read: nothing found, and saying so."""
    return Contamination((), {label: {} for label in benchmarks}, lineage_read=False)


def _inputs(lineage: Mapping[str, Any]) -> dict[str, str]:
    inputs = lineage.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise ManifestError("lineage", "store", f"'inputs' must be an object, not {inputs!r}")
    return {str(name): str(digest) for name, digest in inputs.items()}


def _strings(value: Any) -> Iterator[str]:
    """Every string in a config (nested objects and lists included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _ancestor(
    manifest: Callable[[str], Artifact], inputs: Mapping[str, str], name: str
) -> str | None:
    """The digest of the nearest artifact called `name` upstream of `inputs`, if any."""
    queue = deque(inputs.items())
    seen: set[str] = set()
    while queue:
        input_name, digest = queue.popleft()
        if input_name == name:
            return digest
        if digest in seen:
            continue
        seen.add(digest)
        queue.extend(_inputs(manifest(digest).lineage).items())
    return None


def _holds_problems(store: ArtifactStore, digest: str) -> bool:
    """Whether an artifact is a problem dataset: a JSONL file whose first row has a query."""
    artifact = store.load_manifest(digest)
    entry = next((f for f in artifact.files if f.path.endswith(".jsonl")), None)
    if entry is None or entry.size == 0:
        return False
    head = b""
    # Unchecked bytes, read only to decide; `_keys_of` reads the file through the checked path.
    for chunk in store.read_blob_chunks(entry.sha256):
        head += chunk
        if b"\n" in head or len(head) > 1 << 20:
            break
    try:
        row = json.loads(head.split(b"\n", 1)[0])
    except ValueError:
        return False
    return isinstance(row, dict) and "query" in row and "solution" in row


def _keys_of(store: ArtifactStore, digest: str) -> Iterator[str]:
    artifact: Artifact = store.load_manifest(digest)
    with tempfile.TemporaryDirectory(prefix="voltx-contamination-") as scratch:
        folder = store.get(digest, Path(scratch) / "dataset")
        files = [folder] if folder.is_file() else sorted(folder.rglob("*.jsonl"))
        for path in files:
            with open(path, encoding="utf-8") as stream:
                for number, line in enumerate(stream, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        yield problem_key(str(row["query"]), str(row["solution"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning(
                            "training row without query and solution",
                            artifact=artifact.name,
                            line=number,
                        )
