"""The labelled set of phase 3.3: benign programs (the store's reference solutions) and
adversarial ones drawn from `safety_attacks`, split train / held-out by source
(`docs/phases.md`, 3.3).

    programs = benign_programs(dataset_files) + adversarial_programs(per_axiom=300, seed=0)
    train, held_out = split_by_source(programs, held_out_fraction=0.25, seed=0)

The unit of the split is a program's `source`: the template an adversarial program was drawn
from, or the problem a benign solution answers. Near-duplicates (two draws of one template) are
therefore never on both sides, and held-out figures measure whether the axioms caught a kind of
attack they were not refined on. Programs are text only: nothing here runs them.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from voltx_phases.datasets.readers import read_unified
from voltx_phases.hard_core.safety_attacks import TEMPLATES
from voltx_phases.hard_core.safety_file import expected_names
from voltx_phases.hard_core.safety_templates import NAMES, Template

# Draws of one program may repeat; give up on a template after this many draws per program asked.
_DRAWS_PER_PROGRAM = 20
_PREAMBLES = ("import sys", "import time", 'VERSION = "1.{n}"', "DEBUG = False", "RETRIES = {n}")
_COMMENTS = ("utility", "cleanup step", "see README", "TODO: tidy", "helper for the task")


@attrs.frozen
class LabelledProgram:
    """One program of the set: its text, the axiom it violates (None when benign) and the
    source it came from (the split unit)."""

    code: str
    axiom: str | None
    source: str

    @property
    def benign(self) -> bool:
        return self.axiom is None


def benign_programs(files: Mapping[str, Path]) -> list[LabelledProgram]:
    """Every non-empty reference solution of the unified problem files `files` (dataset name ->
    JSONL file), first occurrence kept when a solution appears in two datasets (the combined
    training set repeats the benchmarks)."""
    seen: set[str] = set()
    programs = []
    for dataset, path in files.items():
        for problem in read_unified(path):
            code = problem.solution.strip()
            if not code or code in seen:
                continue
            seen.add(code)
            programs.append(
                LabelledProgram(code=code, axiom=None, source=f"{dataset}/{problem.id}")
            )
    return programs


def _wrap(body: str, rng: random.Random) -> str:
    """The drawn body as a script, inside a function, a main guard, a try block, or under a
    comment: the same attack in the shapes it takes in real code."""
    if rng.random() < 0.5:
        body = f"{rng.choice(_PREAMBLES).format(n=rng.randrange(100))}\n{body}"
    style = rng.randrange(5)
    name = rng.choice(NAMES)
    if style == 1:
        return f"def {name}():\n{textwrap.indent(body, '    ')}\n\n\n{name}()"
    if style == 2:
        return f'if __name__ == "__main__":\n{textwrap.indent(body, "    ")}'
    if style == 3:
        return f"try:\n{textwrap.indent(body, '    ')}\nexcept Exception:\n    pass"
    if style == 4:
        return f"# {rng.choice(_COMMENTS)}\n{body}"
    return body


def _draws(template: Template, count: int, seed: int) -> list[str]:
    """Up to `count` distinct programs of `template`; one generator per template, so adding a
    template never changes another's programs."""
    rng = random.Random(f"{seed}:{template.key}")
    programs: list[str] = []
    seen: set[str] = set()
    for _ in range(count * _DRAWS_PER_PROGRAM):
        if len(programs) == count:
            break
        code = _wrap(template.draw(rng), rng)
        if code not in seen:
            seen.add(code)
            programs.append(code)
    return programs


def adversarial_programs(
    per_axiom: int, seed: int, templates: Iterable[Template] = TEMPLATES
) -> list[LabelledProgram]:
    """`per_axiom` distinct programs for each axiom K1..K5, shared as evenly as the templates'
    variety allows among the axiom's templates (a template with few distinct draws leaves its
    share to the others)."""
    by_axiom: dict[str, list[Template]] = {name: [] for name in expected_names()}
    for template in templates:
        by_axiom[template.axiom].append(template)
    programs = []
    for axiom, family in by_axiom.items():
        pools = {t.key: _draws(t, per_axiom, seed) for t in family}
        taken = {key: 0 for key in pools}
        chosen = 0
        while chosen < per_axiom and any(taken[k] < len(pools[k]) for k in pools):
            for key in sorted(pools):
                if chosen < per_axiom and taken[key] < len(pools[key]):
                    taken[key] += 1
                    chosen += 1
        for key in sorted(pools):
            programs += [LabelledProgram(code, axiom, key) for code in pools[key][: taken[key]]]
    return programs


def split_by_source(
    programs: list[LabelledProgram], held_out_fraction: float, seed: int
) -> tuple[list[LabelledProgram], list[LabelledProgram]]:
    """(train, held-out): for each group (benign, then each axiom) a seeded shuffle of its
    sources, the first `held_out_fraction` of them (at least one, never all) held out."""
    groups: dict[str | None, list[str]] = {}
    for program in programs:
        sources = groups.setdefault(program.axiom, [])
        if program.source not in sources:
            sources.append(program.source)
    held: set[str] = set()
    for group, sources in groups.items():
        if len(sources) < 2:
            continue
        order = sorted(sources)
        random.Random(f"{seed}:{group or 'benign'}").shuffle(order)
        count = min(len(order) - 1, max(1, round(held_out_fraction * len(order))))
        held.update(order[:count])
    train = [p for p in programs if p.source not in held]
    held_out = [p for p in programs if p.source in held]
    return train, held_out
