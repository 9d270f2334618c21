"""Interview templates of the embedded generator: tasks that need a small algorithm.

Run-length coding, bracket matching, merging, rotation, base conversion, grouping. Where the
task allows, the expected values come from a different algorithm than the reference solution
(`itertools.groupby` against the hand-written scan, pair erasure against the bracket stack), so
agreement in the sandbox means something. See `_templates.py`.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

from voltx_phases.datasets._templates import (
    WORDS,
    Draft,
    draft,
    ints,
    pick,
    sentence,
    templates,
)


def run_length(rng: random.Random) -> Draft:
    count_first, skip_ones = rng.random() < 0.5, rng.random() < 0.5
    s = pick(rng, "text", "s", "data")
    name = pick(rng, "run_length_encode", "rle", "compress_runs")
    piece = "str(count) + ch" if count_first else "ch + str(count)"
    emit = f"ch if count == 1 else {piece}" if skip_ones else piece
    order = "the count before the character" if count_first else "the character before the count"
    ones = ", writing a run of one as the bare character" if skip_ones else ""
    task = f"run-length encodes `{s}`, writing {order}{ones}."
    body = f"""
    parts = []
    i = 0
    while i < len({s}):
        ch = {s}[i]
        count = 1
        while i + count < len({s}) and {s}[i + count] == ch:
            count += 1
        parts.append({emit})
        i += count
    return ''.join(parts)
"""

    def ref(t: str) -> str:
        out = []
        for ch, run in itertools.groupby(t):
            count = len(list(run))
            if skip_ones and count == 1:
                out.append(ch)
            else:
                out.append(f"{count}{ch}" if count_first else f"{ch}{count}")
        return "".join(out)

    runs = "".join(rng.choice("abc") * rng.randint(1, 4) for _ in range(5))
    return draft(rng, name, s, task, body, ref, [(runs,), ("",), ("z",), ("a" * 12,)])


def anagram(rng: random.Random) -> Draft:
    a, b = pick(rng, "first", "a", "left"), pick(rng, "second", "b", "right")
    name = pick(rng, "are_anagrams", "is_anagram", "same_letters")
    task = f"returns whether `{a}` and `{b}` are anagrams, ignoring case and spaces."
    body = f"""
    def key(s):
        return sorted(ch for ch in s.lower() if ch != ' ')
    return key({a}) == key({b})
"""

    def ref(x: str, y: str) -> bool:
        return Counter(x.lower().replace(" ", "")) == Counter(y.lower().replace(" ", ""))

    w = rng.choice(WORDS)
    cases = [("Listen", "Silent"), (w, w[::-1].upper()), ("dormitory", "dirty room"), ("ab", "abb")]
    return draft(rng, name, f"{a}, {b}", task, body, ref, cases)


def common_prefix(rng: random.Random) -> Draft:
    ws = pick(rng, "words", "strings", "names")
    name = pick(rng, "longest_common_prefix", "shared_prefix", "common_start")
    task = f"returns the longest common prefix of the strings in `{ws}` ('' for an empty list)."
    body = f"""
    if not {ws}:
        return ''
    prefix = {ws}[0]
    for w in {ws}[1:]:
        while not w.startswith(prefix):
            prefix = prefix[:-1]
    return prefix
"""

    def ref(items: list[str]) -> str:
        n = 0
        while items and all(len(w) > n and w[n] == items[0][n] for w in items):
            n += 1
        return items[0][:n] if items else ""

    stem = rng.choice(WORDS)[:4]
    cases = [([stem + w for w in rng.sample(WORDS, 3)],), (["flower", "flow", "flight"],)]
    return draft(rng, name, ws, task, body, ref, [*cases, ([],), (["x", "y"],)])


def balanced(rng: random.Random) -> Draft:
    pairs = rng.choice(("()[]", "(){}", "()[]{}", "<>()", "[]{}<>"))
    s = pick(rng, "text", "expression", "s")
    name = pick(rng, "is_balanced", "brackets_match", "balanced_brackets")
    closers = {pairs[i + 1]: pairs[i] for i in range(0, len(pairs), 2)}
    kinds = " ".join(pairs[i : i + 2] for i in range(0, len(pairs), 2))
    task = (
        f"returns whether the brackets {kinds} in `{s}` are balanced and properly nested "
        f"(other characters are ignored)."
    )
    body = f"""
    closers = {closers!r}
    stack = []
    for ch in {s}:
        if ch in closers.values():
            stack.append(ch)
        elif ch in closers:
            if not stack or stack.pop() != closers[ch]:
                return False
    return not stack
"""

    def ref(t: str) -> bool:
        # Erase innermost pairs until nothing changes: balanced text erases to nothing.
        kept = "".join(ch for ch in t if ch in pairs)
        while True:
            shorter = kept
            for i in range(0, len(pairs), 2):
                shorter = shorter.replace(pairs[i : i + 2], "")
            if shorter == kept:
                return not kept
            kept = shorter

    o1, c1, o2, c2 = pairs[0], pairs[1], pairs[-2], pairs[-1]
    cases = [(f"{o1}a{o2}{c2}{c1}",), (f"{o1}{o2}{c1}{c2}",), ("",), (c1,), (f"{o2}x{o1}",)]
    return draft(rng, name, s, task, body, ref, cases)


def pair_sum(rng: random.Random) -> Draft:
    k = rng.randint(5, 30)
    xs = pick(rng, "numbers", "nums", "values")
    name = pick(rng, f"pairs_summing_to_{k}", "count_pairs", "matching_pairs")
    task = f"returns how many pairs of positions i < j have `{xs}[i] + {xs}[j] == {k}`."
    body = f"""
    count = 0
    for i in range(len({xs})):
        for j in range(i + 1, len({xs})):
            if {xs}[i] + {xs}[j] == {k}:
                count += 1
    return count
"""

    def ref(vs: list[int]) -> int:
        return sum(1 for x, y in itertools.combinations(vs, 2) if x + y == k)

    cases = [(ints(rng, n, 0, k),) for n in (6, 12)] + [([],), ([k // 2, k - k // 2],)]
    return draft(rng, name, xs, task, body, ref, cases)


def rotate(rng: random.Random) -> Draft:
    k, right = rng.randint(1, 6), rng.random() < 0.5
    xs = pick(rng, "items", "values", "ring")
    direction = "right" if right else "left"
    name = pick(rng, "rotate", "shift_items", "cycle_list") + "_" + direction
    task = f"returns a copy of `{xs}` rotated {k} places to the {direction}."
    cut = f"len({xs}) - {k} % len({xs})" if right else f"{k} % len({xs})"
    body = f"""
    if not {xs}:
        return []
    cut = {cut}
    return {xs}[cut:] + {xs}[:cut]
"""

    def ref(vs: list[int]) -> list[int]:
        out = list(vs)
        for _ in range(k if out else 0):
            out = [out[-1], *out[:-1]] if right else [*out[1:], out[0]]
        return out

    return draft(rng, name, xs, task, body, ref, [(list(range(n)),) for n in (0, 1, 5, 9)])


def caesar(rng: random.Random) -> Draft:
    k, decode = rng.randint(1, 25), rng.random() < 0.5
    s = pick(rng, "message", "text", "plain")
    if decode:
        name, shift, way = pick(rng, "caesar_decode", "unshift_letters"), -k, "back"
    else:
        name, shift, way = pick(rng, "caesar", "shift_letters"), k, "forward"
    task = (
        f"shifts every ASCII letter of `{s}` {k} places {way} in the alphabet (wrapping, keeping "
        f"case) and leaves other characters alone."
    )
    body = f"""
    out = []
    for ch in {s}:
        if ch.isalpha() and ch.isascii():
            base = ord('a') if ch.islower() else ord('A')
            out.append(chr((ord(ch) - base + {shift}) % 26 + base))
        else:
            out.append(ch)
    return ''.join(out)
"""
    lower = "abcdefghijklmnopqrstuvwxyz"
    moved = lower[shift % 26 :] + lower[: shift % 26]
    table = str.maketrans(lower + lower.upper(), moved + moved.upper())

    def ref(t: str) -> str:
        return t.translate(table)

    cases = [(sentence(rng, 3).title() + "!",), ("",), ("xyz XYZ",)]
    return draft(rng, name, s, task, body, ref, cases)


def merge_sorted(rng: random.Random) -> Draft:
    unique = rng.random() < 0.5
    a, b = pick(rng, "left", "first", "a"), pick(rng, "right", "second", "b")
    name = pick(rng, "merge_sorted", "merge_lists", "combine_sorted") + (
        "_unique" if unique else ""
    )
    extra = ", dropping duplicates" if unique else ""
    task = f"merges the ascending lists `{a}` and `{b}` into one ascending list{extra}."
    keep = "if not out or out[-1] != v:\n            out.append(v)" if unique else "out.append(v)"
    body = f"""
    i = j = 0
    merged = []
    while i < len({a}) and j < len({b}):
        if {a}[i] <= {b}[j]:
            merged.append({a}[i])
            i += 1
        else:
            merged.append({b}[j])
            j += 1
    merged += {a}[i:] + {b}[j:]
    out = []
    for v in merged:
        {keep}
    return out
"""

    def ref(x: list[int], y: list[int]) -> list[int]:
        return sorted(set(x + y)) if unique else sorted(x + y)

    cases = [(sorted(ints(rng, 5, 0, 9)), sorted(ints(rng, 4, 0, 9))), ([], [1, 2]), ([], [])]
    return draft(rng, name, f"{a}, {b}", task, body, ref, cases)


def most_frequent(rng: random.Random) -> Draft:
    min_len = rng.randint(1, 4)
    s = pick(rng, "text", "document")
    name = pick(rng, "most_common_word", "top_word", "dominant_word")
    task = (
        f"returns the most frequent lowercased word of `{s}` among words with at least {min_len} "
        f"letters (ties go to the alphabetically first; '' when there is none)."
    )
    body = f"""
    counts = {{}}
    for w in {s}.lower().split():
        if len(w) >= {min_len}:
            counts[w] = counts.get(w, 0) + 1
    if not counts:
        return ''
    best = max(counts.values())
    return min(w for w, c in counts.items() if c == best)
"""

    def ref(t: str) -> str:
        counts = Counter(w for w in t.lower().split() if len(w) >= min_len)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return ranked[0][0] if ranked else ""

    return draft(rng, name, s, task, body, ref, [(sentence(rng, 9),), ("b a B a",), ("",)])


def to_base(rng: random.Random) -> Draft:
    b = rng.randint(2, 9)
    n = pick(rng, "n", "number", "value")
    name = pick(rng, f"to_base_{b}", "convert_base", f"base{b}_string")
    task = f"returns the non-negative integer `{n}` written in base {b}."
    body = f"""
    if {n} == 0:
        return '0'
    digits = []
    while {n}:
        digits.append(str({n} % {b}))
        {n} //= {b}
    return ''.join(reversed(digits))
"""

    def ref(v: int) -> str:
        if v == 0:
            return "0"
        width = 1
        while b**width <= v:
            width += 1
        return "".join(str(v // b**p % b) for p in range(width - 1, -1, -1))

    cases = [(0,), (b,), (rng.randint(1, 10_000),), (b**5 - 1,)]
    return draft(rng, name, n, task, body, ref, cases)


def _flat(value: list[Any]) -> list[int]:
    return [y for x in value for y in (_flat(x) if isinstance(x, list) else [x])]


def nested_total(rng: random.Random) -> Draft:
    flatten = rng.random() < 0.5
    xs = pick(rng, "nested", "tree", "data")
    if flatten:
        name = pick(rng, "flatten", "flatten_lists", "unnest")
        task = f"returns the numbers of the arbitrarily nested list `{xs}` as one flat list."
        body = f"""
    out = []
    for item in {xs}:
        if isinstance(item, list):
            out.extend({name}(item))
        else:
            out.append(item)
    return out
"""
    else:
        name = pick(rng, "nested_sum", "deep_sum", "total_nested")
        task = f"returns the sum of all numbers in the arbitrarily nested list `{xs}`."
        body = f"""
    total = 0
    for item in {xs}:
        total += {name}(item) if isinstance(item, list) else item
    return total
"""

    def ref(value: list[Any]) -> Any:
        return _flat(value) if flatten else sum(_flat(value))

    cases = [([1, [2, [3, [4]]], 5],), ([],), ([[[]], [rng.randint(0, 9)], ints(rng, 3)],)]
    return draft(rng, name, xs, task, body, ref, cases)


def group_by_length(rng: random.Random) -> Draft:
    ws = pick(rng, "words", "names")
    name = pick(rng, "group_by_length", "bucket_words", "words_by_size")
    task = (
        f"returns a dict from word length to the alphabetically sorted list of words in `{ws}` "
        f"with that length."
    )
    body = f"""
    groups = {{}}
    for w in {ws}:
        groups.setdefault(len(w), []).append(w)
    return {{k: sorted(v) for k, v in groups.items()}}
"""

    def ref(items: list[str]) -> dict[int, list[str]]:
        # Keys in first-seen order, as the reference builds them (dict equality ignores order).
        return {n: sorted(w for w in items if len(w) == n) for n in dict.fromkeys(map(len, items))}

    cases = [(rng.sample(WORDS, 6),), ([],), (["bb", "a", "cc", "bb"],)]
    return draft(rng, name, ws, task, body, ref, cases)


TEMPLATES = templates(
    "interview",
    run_length,
    anagram,
    common_prefix,
    balanced,
    pair_sum,
    rotate,
    caesar,
    merge_sorted,
    most_frequent,
    to_base,
    nested_total,
    group_by_length,
)
