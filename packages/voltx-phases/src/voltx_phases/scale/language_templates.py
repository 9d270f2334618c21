"""The task families of the per-language problem generator, and how each language writes them.

A `Task` is one drawn problem, independent of the language: its function name, typed
parameters, a description, the body in every language, and test cases whose expected values
come from a Python implementation written beside the bodies. A `Dialect` turns a task into
MultiPL-E's layout for its language (`docs/formats.md`, unified problem JSONL): the solution
(the commented signature and the body) and one test program that follows it in the same source
file. `language_problems.py` runs each pair in the sandbox, so a family whose bodies disagree
with its Python reference loses its problems instead of shipping wrong tests; nothing here is
executed in this process.

Types are few on purpose (an integer, a list of integers, a string, a boolean): each maps to
one type per language (``long``/``ArrayList<Long>`` in Java as MultiPL-E writes them, ``isize``
and ``Vec<isize>`` in Rust, ``int`` and ``[]int`` in Go).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "radar", "level", "amber", "delta")
Case = tuple[tuple[Any, ...], Any]


@attrs.frozen
class Task:
    """One problem, before it is written in a language."""

    family: str
    name: str
    params: tuple[tuple[str, str], ...]  # (name, type) with type int, ints, str or bool
    returns: str
    description: str  # "returns ..." completing "Write a function `f` that"
    bodies: Mapping[str, str]  # language -> body, one indentation level, lines joined by \n
    cases: tuple[Case, ...]


def _signed(value: int) -> str:
    return f"+ {value}" if value >= 0 else f"- {-value}"


def linear(rng: random.Random) -> Task:
    a, b = rng.randint(2, 9), rng.randint(-9, 20)
    x, name = rng.choice(("x", "n", "value")), rng.choice(("scale_and_shift", "affine"))
    return Task(
        "linear",
        name,
        ((x, "int"),),
        "int",
        f"returns {a} times {x} {'plus' if b >= 0 else 'minus'} {abs(b)}",
        {
            "javascript": f"return {x} * {a} {_signed(b)};",
            "java": f"return {x} * {a}L {_signed(b)}L;",
            "rust": f"{x} * {a} {_signed(b)}",
            "go": f"return {x} * {a} {_signed(b)}",
        },
        tuple(((v,), a * v + b) for v in rng.sample(range(-40, 40), 4)),
    )


def sum_above(rng: random.Random) -> Task:
    t = rng.randint(-5, 10)
    xs, name = rng.choice(("xs", "numbers", "values")), rng.choice(("sum_above", "total_over"))
    lists = [[rng.randint(-20, 30) for _ in range(rng.randint(1, 6))] for _ in range(4)]
    return Task(
        "sum_above",
        name,
        ((xs, "ints"),),
        "int",
        f"returns the sum of the elements of {xs} greater than {t}",
        {
            "javascript": f"let total = 0;\nfor (const x of {xs}) {{\n  if (x > {t}) {{\n"
            "    total += x;\n  }\n}\nreturn total;",
            "java": f"long total = 0;\nfor (long x : {xs}) {{\n    if (x > {t}L) {{\n"
            "        total += x;\n    }\n}\nreturn total;",
            "rust": f"{xs}.iter().filter(|&&x| x > {t}).sum()",
            "go": f"total := 0\nfor _, x := range {xs} {{\n\tif x > {t} {{\n\t\ttotal += x\n"
            "\t}\n}\nreturn total",
        },
        tuple(((values,), sum(v for v in values if v > t)) for values in lists),
    )


def count_letter(rng: random.Random) -> Task:
    c, s = rng.choice("aeilnorst"), rng.choice(("s", "text", "word"))
    name = rng.choice((f"count_{c}", f"occurrences_of_{c}"))
    texts = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(3)] + [c * 3]
    return Task(
        "count_letter",
        name,
        ((s, "str"),),
        "int",
        f"returns how many times the letter {c} occurs in {s}",
        {
            "javascript": f"return {s}.split('').filter((ch) => ch === '{c}').length;",
            "java": f"long count = 0;\nfor (char ch : {s}.toCharArray()) {{\n"
            f"    if (ch == '{c}') {{\n        count += 1;\n    }}\n}}\nreturn count;",
            "rust": f"{s}.chars().filter(|&ch| ch == '{c}').count() as isize",
            "go": f"count := 0\nfor _, ch := range {s} {{\n\tif ch == '{c}' {{\n\t\tcount++\n"
            "\t}\n}\nreturn count",
        },
        tuple(((text,), text.count(c)) for text in texts),
    )


def largest(rng: random.Random) -> Task:
    xs, name = rng.choice(("xs", "numbers", "values")), rng.choice(("largest", "maximum"))
    lists = [[rng.randint(-50, 50) for _ in range(rng.randint(1, 6))] for _ in range(4)]
    return Task(
        "largest",
        name,
        ((xs, "ints"),),
        "int",
        f"returns the largest element of the non-empty list {xs}",
        {
            "javascript": f"return Math.max(...{xs});",
            "java": f"long best = {xs}.get(0);\nfor (long x : {xs}) {{\n    if (x > best) {{\n"
            "        best = x;\n    }\n}\nreturn best;",
            "rust": f"*{xs}.iter().max().unwrap()",
            "go": f"best := {xs}[0]\nfor _, x := range {xs} {{\n\tif x > best {{\n\t\tbest = x\n"
            "\t}\n}\nreturn best",
        },
        tuple(((values,), max(values)) for values in lists),
    )


def reverse_text(rng: random.Random) -> Task:
    s, name = rng.choice(("s", "text", "word")), rng.choice(("reverse_text", "backwards"))
    texts = [" ".join(rng.sample(WORDS, rng.randint(1, 2))) for _ in range(4)]
    return Task(
        "reverse_text",
        name,
        ((s, "str"),),
        "str",
        f"returns {s} spelled backwards",
        {
            "javascript": f"return {s}.split('').reverse().join('');",
            "java": f"return new StringBuilder({s}).reverse().toString();",
            "rust": f"{s}.chars().rev().collect()",
            "go": f"runes := []rune({s})\nfor i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {{\n"
            "\trunes[i], runes[j] = runes[j], runes[i]\n}\nreturn string(runes)",
        },
        tuple(((text,), text[::-1]) for text in texts),
    )


def divisible(rng: random.Random) -> Task:
    k = rng.randint(2, 9)
    x, name = (
        rng.choice(("x", "n", "value")),
        rng.choice((f"divisible_by_{k}", f"is_multiple_of_{k}")),
    )
    values = [*rng.sample(range(0, 60), 3), k * rng.randint(1, 9)]
    return Task(
        "divisible",
        name,
        ((x, "int"),),
        "bool",
        f"returns whether {x} is divisible by {k}",
        {
            "javascript": f"return {x} % {k} === 0;",
            "java": f"return {x} % {k}L == 0;",
            "rust": f"{x} % {k} == 0",
            "go": f"return {x}%{k} == 0",
        },
        tuple(((v,), v % k == 0) for v in values),
    )


FAMILIES: tuple[Callable[[random.Random], Task], ...] = (
    linear,
    sum_above,
    count_letter,
    largest,
    reverse_text,
    divisible,
)


# --- dialects ----------------------------------------------------------------------------------


def _indent(body: str, unit: str) -> str:
    return "\n".join(unit + line if line else line for line in body.split("\n"))


def _string(value: str) -> str:
    # JSON's escapes are valid string escapes in JavaScript, Java, Rust and Go for this ASCII.
    return json.dumps(value)


@attrs.frozen
class Dialect:
    """How one language writes a task's types, values, solution and tests."""

    language: str
    types: Mapping[str, str]
    literal: Callable[[str, Any], str]
    solution: Callable[[Task, Dialect], str]
    tests: Callable[[Task, Dialect], str]

    def call(self, function: str, task: Task, args: tuple[Any, ...]) -> str:
        typed = zip((kind for _, kind in task.params), args, strict=True)
        return f"{function}({', '.join(self.literal(kind, value) for kind, value in typed)})"


def _js_literal(kind: str, value: Any) -> str:
    return _string(value) if kind == "str" else json.dumps(value)


def _js_solution(task: Task, dialect: Dialect) -> str:
    params = ", ".join(name for name, _ in task.params)
    return (
        f"//{task.description}\nfunction {task.name}({params}){{\n"
        + _indent(task.bodies["javascript"], "  ")
        + "\n}\n"
    )


def _js_tests(task: Task, dialect: Dialect) -> str:
    checks = "".join(
        f"  assert.deepEqual({dialect.call('candidate', task, args)},"
        f"{_js_literal(task.returns, expected)});\n"
        for args, expected in task.cases
    )
    return (
        "const assert = require('node:assert');\n\nfunction test() {\n"
        f"  let candidate = {task.name};\n{checks}}}\n\ntest();"
    )


def _java_literal(kind: str, value: Any) -> str:
    if kind == "int":
        return f"({value}l)"
    if kind == "ints":
        return f"new ArrayList<Long>(Arrays.asList({', '.join(f'(long){v}l' for v in value)}))"
    if kind == "bool":
        return "true" if value else "false"
    return _string(value)


def _java_solution(task: Task, dialect: Dialect) -> str:
    params = ", ".join(f"{dialect.types[kind]} {name}" for name, kind in task.params)
    return (
        f"import java.util.*;\nclass Problem {{\n    // {task.description}\n"
        f"    public static {dialect.types[task.returns]} {task.name}({params}) {{\n"
        + _indent(task.bodies["java"], " " * 8)
        + "\n    }\n"
    )


def _java_tests(task: Task, dialect: Dialect) -> str:
    checks = []
    for args, expected in task.cases:
        call, wanted = dialect.call(task.name, task, args), _java_literal(task.returns, expected)
        same = f"{call}.equals({wanted})" if task.returns == "str" else f"{call} == ({wanted})"
        checks.append(f"    assert({same});\n")
    return "    public static void main(String[] args) {\n" + "".join(checks) + "    }\n\n}\n"


def _rust_literal(kind: str, value: Any) -> str:
    if kind == "ints":
        return f"vec![{', '.join(str(v) for v in value)}]"
    if kind == "str":
        return f"String::from({_string(value)})"
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _rust_solution(task: Task, dialect: Dialect) -> str:
    params = ", ".join(f"{name}: {dialect.types[kind]}" for name, kind in task.params)
    return (
        f"/// {task.description}\nfn {task.name}({params}) -> {dialect.types[task.returns]} {{\n"
        + _indent(task.bodies["rust"], "    ")
        + "\n}\n"
    )


def _rust_tests(task: Task, dialect: Dialect) -> str:
    checks = "".join(
        f"    assert_eq!({dialect.call('candidate', task, args)}, "
        f"{_rust_literal(task.returns, expected)});\n"
        for args, expected in task.cases
    )
    return f"\nfn main() {{\n    let candidate = {task.name};\n{checks}}}\n"


def _go_literal(kind: str, value: Any) -> str:
    if kind == "ints":
        return f"[]int{{{', '.join(str(v) for v in value)}}}"
    if kind == "str":
        return _string(value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _go_solution(task: Task, dialect: Dialect) -> str:
    params = ", ".join(f"{name} {dialect.types[kind]}" for name, kind in task.params)
    return (
        f'package {task.name}_test\n\nimport (\n    "testing"\n    "fmt"\n)\n\n'
        f"// {task.description}\nfunc {task.name}({params}) {dialect.types[task.returns]} {{\n"
        + _indent(task.bodies["go"], "\t")
        + "\n}\n"
    )


def _go_tests(task: Task, dialect: Dialect) -> str:
    rows = "".join(
        f"     {{ actual: {dialect.call('candidate', task, args)}, "
        f"expected: {_go_literal(task.returns, expected)} }},\n"
        for args, expected in task.cases
    )
    title = "".join(part.capitalize() for part in task.name.split("_"))
    return (
        f"func Test{title}(t *testing.T) {{\n  candidate := {task.name}\n\ttype test struct {{\n"
        "\t\tactual   interface{}\n\t\texpected interface{}\n\t}\n"
        f"   tests := []test{{\n{rows}   }}\n\n\tfor i, tc := range tests {{\n"
        '\t\tt.Run(fmt.Sprintf("test num % d", i), func(t *testing.T) {\n'
        '\t\t\tif fmt.Sprintf("%v", tc.actual) != fmt.Sprintf("%v", tc.expected) {\n'
        "\t\t\t\tt.Errorf(\"expected '%s', got '%s'\", tc.expected, tc.actual)\n"
        "\t\t\t}\n\t\t})\n\t}\n}\n"
    )


DIALECTS: dict[str, Dialect] = {
    "javascript": Dialect("javascript", {}, _js_literal, _js_solution, _js_tests),
    "java": Dialect(
        "java",
        {"int": "long", "ints": "ArrayList<Long>", "str": "String", "bool": "boolean"},
        _java_literal,
        _java_solution,
        _java_tests,
    ),
    "rust": Dialect(
        "rust",
        {"int": "isize", "ints": "Vec<isize>", "str": "String", "bool": "bool"},
        _rust_literal,
        _rust_solution,
        _rust_tests,
    ),
    "go": Dialect(
        "go",
        {"int": "int", "ints": "[]int", "str": "string", "bool": "bool"},
        _go_literal,
        _go_solution,
        _go_tests,
    ),
}
