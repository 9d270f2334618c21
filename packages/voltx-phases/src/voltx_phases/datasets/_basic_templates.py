"""Introductory templates of the embedded generator: one-step string, list, math and dict tasks.

See `_templates.py` for what a template returns and why every one carries two implementations.
"""

from __future__ import annotations

import operator
import random
from collections import Counter

from voltx_phases.datasets._templates import (
    WORDS,
    Draft,
    draft,
    ints,
    pick,
    sentence,
    templates,
)


def linear(rng: random.Random) -> Draft:
    a, b = rng.randint(2, 12), rng.randint(-9, 20)
    x = pick(rng, "x", "n", "value")
    name = pick(rng, "scale_and_shift", "affine", "transform_value")
    sign, size, word = ("+", b, "plus") if b >= 0 else ("-", -b, "minus")
    task = f"returns {a} times `{x}` {word} {size}."
    body = f"    return {x} * {a} {sign} {size}"
    cases = [(v,) for v in ints(rng, 5, -50, 50)]
    return draft(rng, name, x, task, body, lambda v: v * a + b, cases)


def count_char(rng: random.Random) -> Draft:
    c, fold = rng.choice("aeiostnr"), rng.random() < 0.5
    s = pick(rng, "text", "s", "word")
    name = pick(rng, f"count_{c}", f"occurrences_of_{c}", f"how_many_{c}")
    where = "ignoring case" if fold else "counting only the lowercase letter"
    task = f"returns how many times the letter {c!r} occurs in `{s}`, {where}."
    body = f"    return {s}.lower().count({c!r})" if fold else f"    return {s}.count({c!r})"

    def ref(t: str) -> int:
        return (t.lower() if fold else t).count(c)

    cases = [(sentence(rng, 3).title(),), (sentence(rng, 4),), ("",), (c.upper() * 3 + c,)]
    return draft(rng, name, s, task, body, ref, cases)


def count_vowels(rng: random.Random) -> Draft:
    vowels = pick(rng, "aeiou", "aeiouy")
    s = pick(rng, "text", "s", "sentence")
    name = pick(rng, "count_vowels", "vowel_count", "number_of_vowels")
    task = f"returns the number of vowels ({', '.join(vowels)}, either case) in `{s}`."
    body = f"    return sum(1 for ch in {s}.lower() if ch in {vowels!r})"

    def ref(t: str) -> int:
        return sum(1 for ch in t.lower() if ch in vowels)

    cases = [(sentence(rng, 3),), ("RHYTHM",), ("",), (sentence(rng, 2).upper(),)]
    return draft(rng, name, s, task, body, ref, cases)


def reverse_words(rng: random.Random) -> Draft:
    s = pick(rng, "sentence", "text", "line")
    each = rng.random() < 0.5
    if each:
        name = pick(rng, "reverse_each_word", "mirror_words", "spell_words_backwards")
        task = f"returns `{s}` with each word spelled backwards, words kept in order."
        body = f"    return ' '.join(w[::-1] for w in {s}.split())"
    else:
        name = pick(rng, "reverse_words", "words_backwards", "flip_word_order")
        task = f"returns the words of `{s}` in reverse order, joined by single spaces."
        body = f"    return ' '.join(reversed({s}.split()))"

    def ref(t: str) -> str:
        words = t.split()
        return " ".join(w[::-1] for w in words) if each else " ".join(words[::-1])

    cases = [(sentence(rng, n),) for n in (1, 3, 5)] + [("",)]
    return draft(rng, name, s, task, body, ref, cases)


def palindrome(rng: random.Random) -> Draft:
    fold, alnum = rng.random() < 0.5, rng.random() < 0.5
    s = pick(rng, "text", "s", "phrase")
    name = pick(rng, "is_palindrome", "reads_same_backwards", "palindrome_check")
    clean = f"{s}.lower()" if fold else s
    if alnum:
        clean = f"''.join(ch for ch in {clean} if ch.isalnum())"
    rules = [r for r, on in (("ignoring case", fold), ("ignoring non-alphanumerics", alnum)) if on]
    how = f"({', '.join(rules)})" if rules else "(exactly, character by character)"
    task = f"returns whether `{s}` reads the same forwards and backwards {how}."
    body = f"""
    cleaned = {clean}
    return cleaned == cleaned[::-1]
"""

    def ref(t: str) -> bool:
        t = t.lower() if fold else t
        t = "".join(ch for ch in t if ch.isalnum()) if alnum else t
        return t == t[::-1]

    cases = [(w,) for w in ("Level", "radar", "Never odd, or even", "abcba ", "abc", "")]
    return draft(rng, name, s, task, body, ref, cases)


def sum_multiples(rng: random.Random) -> Draft:
    a, b = rng.sample(range(2, 10), 2)
    n = pick(rng, "limit", "n", "upper")
    name = pick(rng, "sum_of_multiples", "multiples_total", f"sum_multiples_{a}_{b}")
    task = f"returns the sum of the positive integers below `{n}` divisible by {a} or by {b}."
    body = f"    return sum(x for x in range(1, {n}) if x % {a} == 0 or x % {b} == 0)"

    def ref(m: int) -> int:
        return sum(x for x in range(1, m) if x % a == 0 or x % b == 0)

    cases = [(m,) for m in (0, 1, 10, rng.randint(11, 60), rng.randint(100, 400))]
    return draft(rng, name, n, task, body, ref, cases)


def filter_threshold(rng: random.Random) -> Draft:
    t = rng.randint(-5, 20)
    op, words = rng.choice(((">", "greater than"), (">=", "at least"), ("<", "less than")))
    compare = {">": operator.gt, ">=": operator.ge, "<": operator.lt}[op]
    xs = pick(rng, "numbers", "values", "items")
    name = pick(rng, "keep_large", "select_values", "filter_numbers")
    task = f"returns, in order, the elements of `{xs}` that are {words} {t}."
    body = f"    return [v for v in {xs} if v {op} {t}]"

    def ref(vs: list[int]) -> list[int]:
        return [v for v in vs if compare(v, t)]

    cases = [(ints(rng, n),) for n in (6, 9)] + [([],), ([t, t + 1, t - 1],)]
    return draft(rng, name, xs, task, body, ref, cases)


def map_filter(rng: random.Random) -> Draft:
    k, m = rng.randint(2, 9), rng.randint(2, 5)
    r = rng.randrange(m)
    xs = pick(rng, "numbers", "nums", "data")
    name = pick(rng, "scaled_selection", "pick_and_scale", "transform_matching")
    task = (
        f"returns a list of `{xs}`'s elements that leave remainder {r} when divided by {m}, "
        f"each multiplied by {k}, in their original order."
    )
    body = f"    return [x * {k} for x in {xs} if x % {m} == {r}]"

    def ref(vs: list[int]) -> list[int]:
        return [x * k for x in vs if x % m == r]

    cases = [(ints(rng, n, 0, 50),) for n in (5, 8, 12)] + [([],)]
    return draft(rng, name, xs, task, body, ref, cases)


def range_span(rng: random.Random) -> Draft:
    total = rng.random() < 0.5
    xs = pick(rng, "numbers", "values", "readings")
    if total:
        name, op, words = pick(rng, "extremes_sum", "min_max_total"), "+", "sum"
    else:
        name, op, words = pick(rng, "spread", "span"), "-", "difference"
    task = f"returns the {words} of the largest and the smallest element of the non-empty `{xs}`."
    body = f"    return max({xs}) {op} min({xs})"

    def ref(vs: list[int]) -> int:
        return max(vs) + min(vs) if total else max(vs) - min(vs)

    return draft(rng, name, xs, task, body, ref, [(ints(rng, n),) for n in (1, 4, 10)])


def fizz_words(rng: random.Random) -> Draft:
    a, b = rng.sample(range(2, 8), 2)
    w1, w2 = (w.capitalize() for w in rng.sample(WORDS, 2))
    n = pick(rng, "n", "count", "limit")
    name = pick(rng, "fizz_sequence", "number_words", f"{w1.lower()}_{w2.lower()}")
    task = (
        f"returns a list of strings for the numbers 1 to `{n}`: {w1!r} for multiples of {a}, "
        f"{w2!r} for multiples of {b}, {w1 + w2!r} for multiples of both, otherwise the number."
    )
    body = f"""
    result = []
    for i in range(1, {n} + 1):
        word = ({w1!r} if i % {a} == 0 else '') + ({w2!r} if i % {b} == 0 else '')
        result.append(word or str(i))
    return result
"""

    def ref(count: int) -> list[str]:
        out = []
        for i in range(1, count + 1):
            word = (w1 if i % a == 0 else "") + (w2 if i % b == 0 else "")
            out.append(word or str(i))
        return out

    return draft(rng, name, n, task, body, ref, [(0,), (a * b,), (rng.randint(1, 20),)])


def word_freq(rng: random.Random) -> Draft:
    min_len = rng.randint(1, 5)
    s = pick(rng, "text", "sentence", "document")
    name = pick(rng, "word_counts", "word_frequencies", "count_words")
    task = (
        f"returns a dict mapping each lowercased word of `{s}` with at least {min_len} "
        f"letters to how many times it occurs."
    )
    body = f"""
    counts = {{}}
    for word in {s}.lower().split():
        if len(word) >= {min_len}:
            counts[word] = counts.get(word, 0) + 1
    return counts
"""

    def ref(t: str) -> dict[str, int]:
        return dict(Counter(w for w in t.lower().split() if len(w) >= min_len))

    cases = [(sentence(rng, 6).upper(),), ("a bb a ccc bb a",), ("",)]
    return draft(rng, name, s, task, body, ref, cases)


def invert_dict(rng: random.Random) -> Draft:
    d = rng.randint(1, 4)
    m = pick(rng, "mapping", "table", "index")
    name = pick(rng, "invert", "swap_keys_values", "reverse_lookup")
    keep = f" whose value is divisible by {d}" if d > 1 else ""
    cond = f" if v % {d} == 0" if d > 1 else ""
    task = f"returns a new dict mapping each value of `{m}`{keep} to its key (values are unique)."
    body = f"    return {{v: k for k, v in {m}.items(){cond}}}"
    # Values must be unique for the inverse to be defined: 40 * draw + position is.
    cases = [
        ({w: rng.randint(0, 30) * 40 + i for i, w in enumerate(rng.sample(WORDS, n))},)
        for n in (3, 6)
    ] + [({},)]

    def ref(t: dict[str, int]) -> dict[int, str]:
        return {v: k for k, v in t.items() if v % d == 0}

    return draft(rng, name, m, task, body, ref, cases)


def digit_stat(rng: random.Random) -> Draft:
    n = pick(rng, "n", "number", "value")
    kind, t = rng.choice(("sum", "product", "above")), rng.randint(2, 7)
    if kind == "sum":
        name, what = pick(rng, "digit_sum", "sum_of_digits"), "the sum of the decimal digits"
        body = f"    return sum(int(d) for d in str(abs({n})))"
    elif kind == "product":
        name, what = pick(rng, "digit_product", "product_of_digits"), "the product of the digits"
        body = f"""
    result = 1
    for d in str(abs({n})):
        result *= int(d)
    return result
"""
    else:
        name = pick(rng, f"digits_above_{t}", f"count_digits_over_{t}")
        what = f"how many decimal digits are greater than {t}"
        body = f"    return sum(1 for d in str(abs({n})) if int(d) > {t})"

    def ref(v: int) -> int:
        digits = [int(ch) for ch in str(abs(v))]
        if kind == "sum":
            return sum(digits)
        if kind == "above":
            return sum(1 for x in digits if x > t)
        product = 1
        for x in digits:
            product *= x
        return product

    task = f"returns {what} of the integer `{n}` (sign ignored)."
    cases = [(0,), (rng.randint(10, 99999),), (-rng.randint(100, 9999),), (7,)]
    return draft(rng, name, n, task, body, ref, cases)


def repeat_chars(rng: random.Random) -> Draft:
    k = rng.randint(2, 5)
    s = pick(rng, "text", "s", "word")
    name = pick(rng, "stretch", "repeat_letters", f"repeat_each_{k}")
    task = f"returns `{s}` with every character repeated {k} times in place."
    body = f"    return ''.join(ch * {k} for ch in {s})"

    def ref(t: str) -> str:
        return "".join(ch * k for ch in t)

    return draft(rng, name, s, task, body, ref, [(rng.choice(WORDS),), ("",), ("a b",)])


def dedupe(rng: random.Random) -> Draft:
    xs = pick(rng, "items", "values", "sequence")
    in_order = rng.random() < 0.5
    if in_order:
        name = pick(rng, "unique_in_order", "dedupe", "remove_duplicates")
        task = f"returns `{xs}` without repeated elements, keeping each first occurrence in order."
        body = f"""
    seen = set()
    result = []
    for item in {xs}:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result
"""
    else:
        name = pick(rng, "distinct_descending", "unique_sorted_desc")
        task = f"returns the distinct elements of `{xs}` sorted from largest to smallest."
        body = f"    return sorted(set({xs}), reverse=True)"

    def ref(vs: list[int]) -> list[int]:
        return list(dict.fromkeys(vs)) if in_order else sorted(set(vs), reverse=True)

    cases = [(ints(rng, n, 0, 6),) for n in (5, 10)] + [([],)]
    return draft(rng, name, xs, task, body, ref, cases)


def find_index(rng: random.Random) -> Draft:
    last = rng.random() < 0.5
    xs, t = pick(rng, "items", "values"), pick(rng, "target", "wanted")
    if last:
        name, which = pick(rng, "last_index", "rfind_item"), "last"
        positions = f"range(len({xs}) - 1, -1, -1)"
    else:
        name, which = pick(rng, "first_index", "find_item"), "first"
        positions = f"range(len({xs}))"
    task = f"returns the {which} index of `{t}` in `{xs}`, or -1 when it does not occur."
    body = f"""
    for i in {positions}:
        if {xs}[i] == {t}:
            return i
    return -1
"""

    def ref(vs: list[int], target: int) -> int:
        hits = [i for i, v in enumerate(vs) if v == target]
        return (hits[-1] if last else hits[0]) if hits else -1

    data = ints(rng, 10, 0, 5)
    cases = [(data, data[3]), (data, 9), ([], 1), ([2, 2, 2], 2)]
    return draft(rng, name, f"{xs}, {t}", task, body, ref, cases)


def clamp_list(rng: random.Random) -> Draft:
    lo = rng.randint(-10, 5)
    hi = lo + rng.randint(3, 20)
    xs = pick(rng, "values", "samples", "numbers")
    name = pick(rng, "clamp_all", "clip_values", "bound_values")
    task = f"returns `{xs}` with every element clamped to the range [{lo}, {hi}]."
    body = f"    return [min(max(v, {lo}), {hi}) for v in {xs}]"

    def ref(vs: list[int]) -> list[int]:
        return [lo if v < lo else hi if v > hi else v for v in vs]

    cases = [(ints(rng, 8, -30, 40),), ([lo, hi, lo - 1, hi + 1],), ([],)]
    return draft(rng, name, xs, task, body, ref, cases)


def count_long_words(rng: random.Random) -> Draft:
    n = rng.randint(3, 6)
    s = pick(rng, "text", "sentence")
    name = pick(rng, "count_long_words", f"words_longer_than_{n}")
    task = f"returns how many words of `{s}` have more than {n} letters."
    body = f"    return sum(1 for w in {s}.split() if len(w) > {n})"

    def ref(t: str) -> int:
        return len([w for w in t.split() if len(w) > n])

    cases = [(sentence(rng, 7),), ("",), (sentence(rng, 2),)]
    return draft(rng, name, s, task, body, ref, cases)


TEMPLATES = templates(
    "introductory",
    linear,
    count_char,
    count_vowels,
    reverse_words,
    palindrome,
    sum_multiples,
    filter_threshold,
    map_filter,
    range_span,
    fizz_words,
    word_freq,
    invert_dict,
    digit_stat,
    repeat_chars,
    dedupe,
    find_index,
    clamp_list,
    count_long_words,
)
