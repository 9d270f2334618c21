"""What a template of the embedded problem generator is, and the helpers templates share.

A template draws its variable parts (function and argument names, constants, a variant of the
task, the wording) from a `random.Random` and returns a `Draft`: a description, the reference
solution as source text, and test cases whose expected values come from a second, independent
implementation written in the template. `generator.py` runs the source against those cases in
the sandbox, so a template whose two implementations disagree loses its problems instead of
shipping wrong tests. The source text is never executed in this process.

The templates live in `_basic_templates.py`, `_interview_templates.py` and
`_competition_templates.py`, one module per difficulty label; the label is what fills the three
`apps_*_train` splits when no APPS file is given.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs

# One string reads better than 33 quoted words.
WORDS = (  # noqa: SIM905
    "apple banana cherry delta echo forest garden harbor island jungle kettle lemon mango "
    "nectar orange pepper quartz river sunset tiger umbrella violet walnut yellow zebra level "
    "radar noon civic kayak stone cloud amber"
).split()
_ASK = ("Write a function", "Implement a function", "Define a Python function", "Create a function")


@attrs.frozen
class Draft:
    """One generated problem before validation."""

    name: str
    query: str
    solution: str
    cases: tuple[tuple[tuple[Any, ...], Any], ...]

    def tests(self) -> tuple[str, ...]:
        """One assert per case: ``assert name(args) == expected``."""
        return tuple(
            f"assert {self.name}({', '.join(map(repr, args))}) == {expected!r}"
            for args, expected in self.cases
        )


@attrs.frozen
class Template:
    """A named problem family with a fixed difficulty."""

    key: str
    difficulty: str
    build: Callable[[random.Random], Draft]


def templates(difficulty: str, *builders: Callable[[random.Random], Draft]) -> list[Template]:
    """Templates named after their builder functions."""
    return [Template(builder.__name__, difficulty, builder) for builder in builders]


def draft(
    rng: random.Random,
    name: str,
    signature: str,
    task: str,
    body: str,
    ref: Callable[..., Any],
    inputs: Sequence[tuple[Any, ...]],
) -> Draft:
    """Assemble a draft. `body` is the indented function body (surrounding newlines dropped);
    `ref` computes each expected value from a copy of the arguments, so it may mutate them."""
    query = f"{rng.choice(_ASK)} `{name}({signature})` that {task}"
    solution = f"def {name}({signature}):\n{body.strip(chr(10))}\n"
    cases = tuple((args, ref(*copy.deepcopy(args))) for args in inputs)
    return Draft(name, query, solution, cases)


def ints(rng: random.Random, n: int, lo: int = -20, hi: int = 40) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def grid(rng: random.Random, rows: int, cols: int, fill: str, empty: str, p: float) -> list[str]:
    """Rows of a random grid: each cell is `fill` with probability `p`, else `empty`."""
    return ["".join(fill if rng.random() < p else empty for _ in range(cols)) for _ in range(rows)]
