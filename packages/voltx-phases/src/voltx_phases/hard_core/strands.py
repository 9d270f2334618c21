"""The default hard strands: each a name, a unit capability vector from `seed_to_vector` of an
8-byte ASCII seed, and the cosine threshold at which the router activates it (`docs/phases.md`,
"Hard core").

    from voltx_phases.hard_core.strands import default_strands
    strands = default_strands()            # math_engine, hdc_algebra, code_runner
    strands = default_strands(weather=True)  # and weather, last

Only the routing side of a strand lives here: what a strand does once routed to (arithmetic, HDC
algebra, running a WebAssembly module) is the model's concern, not the router's.
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.vectors import ascii_seed, seed_to_vector


@attrs.frozen(eq=False)
class Strand:
    """A routable strand: `capability` is a unit float32 [256] vector, `threshold` the least
    cosine with a slot at which the router activates it."""

    name: str
    capability: np.ndarray
    threshold: float

    @classmethod
    def from_seed(cls, name: str, seed: int, threshold: float) -> Strand:
        vector = seed_to_vector(seed)
        vector.setflags(write=False)
        return cls(name=name, capability=vector, threshold=threshold)


DEFAULT_STRAND_THRESHOLD = 0.3

# (name, seed tag) in the original's registration order, which breaks routing ties.
MATH_ENGINE = ("math_engine", "MATHENG1")  # 0x4d415448454e4731
HDC_ALGEBRA = ("hdc_algebra", "HDCALGB1")  # 0x484443414c474231
CODE_RUNNER = ("code_runner", "CODERUN1")  # 0x434f444552554e31
WEATHER = ("weather", "WEATHER1")  # 0x5745415448455231


def default_strands(*, weather: bool = False) -> tuple[Strand, ...]:
    """The strands of the original's default router, in its order. The weather strand sits behind
    a feature the original leaves off by default, so it is included only on request."""
    table = [MATH_ENGINE, HDC_ALGEBRA, CODE_RUNNER] + ([WEATHER] if weather else [])
    return tuple(
        Strand.from_seed(name, ascii_seed(tag), DEFAULT_STRAND_THRESHOLD) for name, tag in table
    )


def capability_matrix(strands: tuple[Strand, ...]) -> np.ndarray:
    """The strands' capability vectors stacked as a float32 [K, 256] array, in strand order."""
    return np.stack([strand.capability for strand in strands]).astype(np.float32)
