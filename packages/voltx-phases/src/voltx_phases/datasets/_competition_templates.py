"""Competition templates of the embedded generator: dynamic programming and graph search.

The expected values come from a different algorithm than the reference solution (patience
sorting against the quadratic LIS, brute force over subsets against the knapsack table,
breadth-first search against the coin-change table, memoised recursion against the bottom-up
tables), so agreement in the sandbox means something. See `_templates.py`.
"""

from __future__ import annotations

import bisect
import random

from voltx_phases.datasets._templates import WORDS, Draft, draft, grid, ints, pick, templates


def stairs(rng: random.Random) -> Draft:
    steps = sorted(rng.sample(range(1, 6), rng.randint(2, 3)))
    mod = rng.choice((1_000_000_007, 998_244_353, 10_007))
    n = pick(rng, "n", "height", "stairs")
    name = pick(rng, "count_climbs", "staircase_ways", "ways_to_top")
    task = (
        f"returns the number of ways to climb `{n}` steps taking jumps of {steps} steps at a "
        f"time (order matters), modulo {mod}."
    )
    body = f"""
    ways = [1] + [0] * {n}
    for i in range(1, {n} + 1):
        ways[i] = sum(ways[i - s] for s in {steps!r} if s <= i) % {mod}
    return ways[{n}]
"""

    def ref(h: int) -> int:
        memo = {0: 1}

        def count(left: int) -> int:
            if left not in memo:
                memo[left] = sum(count(left - s) for s in steps if s <= left) % mod
            return memo[left]

        for i in range(h + 1):  # bottom-up fill keeps the recursion shallow
            count(i)
        return memo[h]

    return draft(rng, name, n, task, body, ref, [(0,), (1,), (7,), (rng.randint(30, 90),)])


def lis(rng: random.Random) -> Draft:
    strict = rng.random() < 0.5
    xs = pick(rng, "sequence", "numbers", "heights")
    name = pick(rng, "longest_increasing", "lis_length", "longest_rising_run")
    kind, op = ("strictly increasing", "<") if strict else ("non-decreasing", "<=")
    task = (
        f"returns the length of the longest {kind} subsequence (not necessarily contiguous) of "
        f"`{xs}`."
    )
    body = f"""
    best = [1] * len({xs})
    for i in range(len({xs})):
        for j in range(i):
            if {xs}[j] {op} {xs}[i]:
                best[i] = max(best[i], best[j] + 1)
    return max(best, default=0)
"""

    def ref(vs: list[int]) -> int:
        tails: list[int] = []  # patience sorting
        for v in vs:
            i = bisect.bisect_left(tails, v) if strict else bisect.bisect_right(tails, v)
            tails[i : i + 1] = [v]
        return len(tails)

    cases = [(ints(rng, n, 0, 9),) for n in (8, 15)] + [([],), ([3, 3, 3],)]
    return draft(rng, name, xs, task, body, ref, cases)


def primes(rng: random.Random) -> Draft:
    kind, d = rng.choice(("count", "sum", "ending")), rng.choice((1, 3, 7, 9))
    n = pick(rng, "limit", "n", "bound")
    if kind == "count":
        name, what = pick(rng, "count_primes", "prime_count"), "how many primes are at most"
        result = "sum(is_prime)"
    elif kind == "sum":
        name, what = pick(rng, "sum_primes", "prime_total"), "the sum of the primes at most"
        result = "sum(i for i, p in enumerate(is_prime) if p)"
    else:
        name, what = f"primes_ending_in_{d}", f"how many primes ending in {d} are at most"
        result = f"sum(1 for i, p in enumerate(is_prime) if p and i % 10 == {d})"
    task = f"returns {what} `{n}`."
    body = f"""
    if {n} < 2:
        return 0
    is_prime = [True] * ({n} + 1)
    is_prime[0] = is_prime[1] = False
    for i in range(2, int({n} ** 0.5) + 1):
        if is_prime[i]:
            for j in range(i * i, {n} + 1, i):
                is_prime[j] = False
    return {result}
"""

    def ref(m: int) -> int:
        found = [p for p in range(2, m + 1) if all(p % q for q in range(2, int(p**0.5) + 1))]
        if kind == "count":
            return len(found)
        return sum(found) if kind == "sum" else sum(1 for p in found if p % 10 == d)

    return draft(rng, name, n, task, body, ref, [(0,), (2,), (30,), (rng.randint(100, 3000),)])


def edit_distance(rng: random.Random) -> Draft:
    ci, cd, cs = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 4)
    a, b = pick(rng, "source", "a", "start"), pick(rng, "target", "b", "goal")
    name = pick(rng, "edit_cost", "weighted_edit_distance", "transform_cost")
    task = (
        f"returns the cheapest way to turn `{a}` into `{b}` when inserting a character costs "
        f"{ci}, deleting one costs {cd} and replacing one costs {cs}."
    )
    body = f"""
    prev = [j * {ci} for j in range(len({b}) + 1)]
    for i in range(1, len({a}) + 1):
        cur = [i * {cd}] + [0] * len({b})
        for j in range(1, len({b}) + 1):
            change = 0 if {a}[i - 1] == {b}[j - 1] else {cs}
            cur[j] = min(prev[j] + {cd}, cur[j - 1] + {ci}, prev[j - 1] + change)
        prev = cur
    return prev[-1]
"""

    def ref(x: str, y: str) -> int:
        memo: dict[tuple[int, int], int] = {}

        def cost(i: int, j: int) -> int:  # cheapest way to turn x[:i] into y[:j]
            if i == 0 or j == 0:
                return j * ci + i * cd
            if (i, j) not in memo:
                change = 0 if x[i - 1] == y[j - 1] else cs
                options = (cost(i - 1, j) + cd, cost(i, j - 1) + ci, cost(i - 1, j - 1) + change)
                memo[i, j] = min(options)
            return memo[i, j]

        return cost(len(x), len(y))

    word, other = rng.sample(WORDS, 2)
    cases = [("kitten", "sitting"), ("", word), (word, ""), (word, other)]
    return draft(rng, name, f"{a}, {b}", task, body, ref, cases)


def grid_paths(rng: random.Random) -> Draft:
    mod = rng.choice((1_000_000_007, 10_007, 1_000))
    g = pick(rng, "grid", "board", "field")
    name = pick(rng, "count_paths", "lattice_routes", "monotone_paths")
    task = (
        f"returns the number of paths from the top-left to the bottom-right cell of `{g}` (a "
        f"list of equal-length strings, '#' blocked, '.' free) moving only right or down, "
        f"modulo {mod}."
    )
    body = f"""
    if not {g} or {g}[0][0] == '#':
        return 0
    rows, cols = len({g}), len({g}[0])
    ways = [[0] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            if {g}[r][c] == '#':
                continue
            if r == 0 and c == 0:
                ways[r][c] = 1
                continue
            up = ways[r - 1][c] if r else 0
            left = ways[r][c - 1] if c else 0
            ways[r][c] = (up + left) % {mod}
    return ways[-1][-1]
"""

    def ref(cells: list[str]) -> int:
        memo: dict[tuple[int, int], int] = {}

        def count(r: int, c: int) -> int:
            if r < 0 or c < 0 or cells[r][c] == "#":
                return 0
            if r == c == 0:
                return 1
            if (r, c) not in memo:
                memo[r, c] = (count(r - 1, c) + count(r, c - 1)) % mod
            return memo[r, c]

        return count(len(cells) - 1, len(cells[0]) - 1) if cells else 0

    cases = [(["..."] * 3,), (grid(rng, 5, 6, "#", ".", 0.2),), (["#."],), (["." * 12] * 12,)]
    return draft(rng, name, g, task, body, ref, cases)


def knapsack(rng: random.Random) -> Draft:
    cap = rng.randint(5, 30)
    w, v = pick(rng, "weights", "sizes"), pick(rng, "values", "gains")
    name = pick(rng, "best_value", "knapsack", "pack_value")
    task = (
        f"returns the largest total of `{v}` over subsets of items whose `{w}` add up to at most "
        f"{cap} (each item used at most once)."
    )
    body = f"""
    best = [0] * ({cap} + 1)
    for weight, value in zip({w}, {v}):
        for c in range({cap}, weight - 1, -1):
            best[c] = max(best[c], best[c - weight] + value)
    return best[{cap}]
"""

    def ref(ws: list[int], vs: list[int]) -> int:
        best = 0  # brute force over every subset: at most 2**9 of them here
        for mask in range(1 << len(ws)):
            chosen = [i for i in range(len(ws)) if mask >> i & 1]
            if sum(ws[i] for i in chosen) <= cap:
                best = max(best, sum(vs[i] for i in chosen))
        return best

    cases = [(ints(rng, n, 1, cap), ints(rng, n, 1, 50)) for n in (0, 4, 9)]
    return draft(rng, name, f"{w}, {v}", task, body, ref, cases)


def islands(rng: random.Random) -> Draft:
    diagonal, land = rng.random() < 0.5, rng.choice("#XL1")
    g = pick(rng, "grid", "chart", "world")
    name = pick(rng, "count_islands", "land_masses", "island_count")
    moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        moves += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    links = "horizontally, vertically or diagonally" if diagonal else "horizontally or vertically"
    task = f"returns the number of islands in `{g}`: groups of {land!r} cells connected {links}."
    body = f"""
    def is_land(r, c):
        return 0 <= r < len({g}) and 0 <= c < len({g}[r]) and {g}[r][c] == {land!r}

    seen = set()
    count = 0
    for r in range(len({g})):
        for c in range(len({g}[r])):
            if not is_land(r, c) or (r, c) in seen:
                continue
            count += 1
            stack = [(r, c)]
            seen.add((r, c))
            while stack:
                y, x = stack.pop()
                for dy, dx in {moves!r}:
                    if is_land(y + dy, x + dx) and (y + dy, x + dx) not in seen:
                        seen.add((y + dy, x + dx))
                        stack.append((y + dy, x + dx))
    return count
"""

    def ref(rows: list[str]) -> int:
        cells = {(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == land}
        count = 0
        while cells:  # peel one island off the set of land cells at a time
            count += 1
            frontier = [cells.pop()]
            while frontier:
                y, x = frontier.pop()
                for dy, dx in moves:
                    if (y + dy, x + dx) in cells:
                        cells.remove((y + dy, x + dx))
                        frontier.append((y + dy, x + dx))
        return count

    small = [land + "." + land, "." + land + "."]
    cases = [(grid(rng, 6, 7, land, ".", 0.4),), (grid(rng, 4, 4, land, ".", 0.5),), ([],)]
    return draft(rng, name, g, task, body, ref, [*cases, (small,)])


def coin_change(rng: random.Random) -> Draft:
    coins = sorted(rng.sample(range(2, 13), rng.randint(2, 4)))
    a = pick(rng, "amount", "total", "target")
    name = pick(rng, "fewest_coins", "min_coins", "make_change")
    task = (
        f"returns the fewest coins of values {coins} (as many of each as needed) that add up to "
        f"`{a}`, or -1 when no combination does."
    )
    body = f"""
    best = [0] + [None] * {a}
    for value in range(1, {a} + 1):
        options = [best[value - c] for c in {coins!r} if c <= value]
        options = [o for o in options if o is not None]
        best[value] = min(options) + 1 if options else None
    return -1 if best[{a}] is None else best[{a}]
"""

    def ref(amount: int) -> int:
        frontier, seen, steps = {0}, {0}, 0  # breadth-first over reachable sums
        while frontier:
            if amount in frontier:
                return steps
            frontier = {v + c for v in frontier for c in coins if v + c <= amount} - seen
            seen |= frontier
            steps += 1
        return -1

    cases = [(0,), (1,), (rng.randint(5, 40),), (rng.randint(41, 150),)]
    return draft(rng, name, a, task, body, ref, cases)


TEMPLATES = templates(
    "competition",
    stairs,
    lis,
    primes,
    edit_distance,
    grid_paths,
    knapsack,
    islands,
    coin_change,
)
