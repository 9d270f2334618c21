"""Test programs for APPS problems, in the form the sandbox runs them.

An APPS problem comes with input/output cases instead of asserts. A case of a function problem
(``fn_name`` given) becomes an assert that calls the function (`call_test`); a stdin/stdout case
becomes a program that runs ``solution.py`` with the case's stdin and compares the output
(`stdio_test`). Reference solutions rely on the names the APPS harness imports before running
them; `with_apps_imports` adds the imports a solution uses without writing them.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any

from voltx_phases.execution.sandbox import STDIO_MARKER

_STDIO_TEMPLATE = (
    STDIO_MARKER
    + """
import io as _io, sys as _sys, threading as _threading
_saved = _sys.stdin, _sys.stdout
_sys.stdin = _io.TextIOWrapper(_io.BytesIO(%(given)s), encoding="utf-8")
_sys.stdout = _io.TextIOWrapper(_io.BytesIO(), encoding="utf-8")
try:
    with open("solution.py", encoding="utf-8") as _file:
        _code = compile(_file.read(), "solution.py", "exec")
    exec(_code, {"__name__": "__main__", "exit": _sys.exit, "quit": _sys.exit})
except SystemExit:
    pass
finally:
    for _thread in _threading.enumerate():
        if _thread is not _threading.main_thread():
            _thread.join()
    _sys.stdout.flush()
    _got = _sys.stdout.buffer.getvalue().decode("utf-8", "replace")
    _sys.stdin, _sys.stdout = _saved
assert _got.split() == %(wanted)s.split(), "wrong output for this input"
"""
)


def stdio_test(given: str, wanted: str) -> str:
    """A test that runs ``solution.py`` with stdin `given` and compares its output to `wanted`.

    Output is compared token by token (whitespace-insensitive), the usual APPS leniency. The
    program runs in the test's own process with `sys.stdin`/`sys.stdout` replaced, so
    `input()`, `sys.stdin.readline` and `sys.stdin.buffer` work; a program that reads file
    descriptor 0 directly (``open(0)``) sees the sandbox's empty stdin instead. The sandbox
    writes the solution to ``solution.py`` and, seeing `STDIO_MARKER`, does not paste it in
    front of the tests.
    """
    return _STDIO_TEMPLATE % {"given": repr(given.encode("utf-8")), "wanted": repr(wanted)}


def call_test(fn_name: str, given: Any, wanted: Any) -> str:
    """An assert calling `fn_name` (or ``Solution().fn_name``, LeetCode style) on `given`.

    APPS wraps a case's expected value in a one-element list, and tuples come back as lists
    from JSON, so both forms count as equal, as in APPS's own harness.
    """
    args = given if isinstance(given, list) else [given]
    return (
        f"_fn = Solution().{fn_name} if 'Solution' in globals() else {fn_name}\n"
        f"_got = _fn(*{args!r})\n"
        f"_want = {wanted!r}\n"
        f"assert _got == _want or [_got] == _want or "
        f"(isinstance(_got, tuple) and [list(_got)] == _want), 'wrong result for this input'\n"
    )


# The names APPS's harness imports before running a solution, so reference solutions use them
# unimported; a solution that uses one gets the import it relied on.
_APPS_IMPORTS = {
    **{name: f"import {name}" for name in ("sys", "time", "itertools", "collections", "math")},
    **{name: f"import {name}" for name in ("fractions", "random", "heapq", "bisect", "string")},
    **{n: f"from itertools import {n}" for n in ("accumulate", "product", "permutations")},
    "combinations": "from itertools import combinations",
    **{
        n: f"from collections import {n}"
        for n in ("Counter", "OrderedDict", "deque", "defaultdict", "ChainMap")
    },
    "lru_cache": "from functools import lru_cache",
    "reduce": "from functools import reduce",
    **{
        n: f"from math import {n}"
        for n in ("sqrt", "sin", "cos", "tan", "ceil", "fabs", "floor", "gcd", "exp", "log2")
    },
    **{n: f"from typing import {n}" for n in ("List", "Tuple", "Dict", "Set", "Optional")},
    **{n: f"from heapq import {n}" for n in ("heappush", "heappop", "heapify")},
    "np": "import numpy as np",
}


def with_apps_imports(solution: str) -> str:
    """`solution` preceded by the APPS-harness imports it uses without importing them."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return solution  # left as it is; its tests will say what is wrong
    bound: set[str] = set(dir(builtins))
    used: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                used.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    missing = dict.fromkeys(_APPS_IMPORTS[n] for n in used if n in _APPS_IMPORTS and n not in bound)
    return "".join(f"{line}\n" for line in missing) + solution if missing else solution
