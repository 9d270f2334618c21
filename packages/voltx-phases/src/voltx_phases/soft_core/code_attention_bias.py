"""Phase 0.4: the code attention bias, a constant 16x16 prior over slot pairs.

    voltx run 0.4
    python -c 'import voltx; voltx.run("0.4")'

Slot i carries role i (Agent, Predicate, Patient, Location, Time, Manner, Instrument, Cause,
Result, then free slots). The bias raises attention between roles that belong together in code;
the values are those of the original `code_attention.rs` (`docs/phases.md`, 0.4), so attention
computed with this artifact matches the original. Slots 9-15 have no prior.

Output: ``code_attention_bias.safetensors`` with one float32 tensor ``bias`` of shape [16, 16].
"""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save_file

from voltx import PhaseContext
from voltx_phases._common.safetensors_header import canonicalize_safetensors

SLOTS = 16
PRIOR_SLOTS = 9  # slots 0-8 carry fixed roles; 9-15 are free
FILE_NAME = "code_attention_bias.safetensors"

# (weight, symmetric slot pairs), from the original's `code_attention.rs` (`docs/phases.md`, 0.4).
_PAIRS: tuple[tuple[float, tuple[tuple[int, int], ...]], ...] = (
    (2.0, ((0, 2), (0, 3), (1, 2))),
    (1.5, ((0, 1), (1, 3), (1, 4))),
    (1.0, ((1, 5), (1, 6), (1, 7), (1, 8), (4, 6), (4, 7), (4, 8))),
    (0.5, ((6, 7), (6, 8), (7, 8))),
)
_DIAGONAL = 0.5


def code_attention_bias() -> np.ndarray:
    """The symmetric bias matrix, float32 [16, 16]."""
    bias = np.zeros((SLOTS, SLOTS), dtype=np.float32)
    for weight, pairs in _PAIRS:
        for i, j in pairs:
            bias[i, j] = bias[j, i] = weight
    for i in range(PRIOR_SLOTS):
        bias[i, i] = _DIAGONAL
    return bias


def run(ctx: PhaseContext) -> None:
    bias = code_attention_bias()
    save_file(
        {"bias": bias},
        str(ctx.outputs["code_attention_bias"] / FILE_NAME),
        metadata={"format": "voltx-code-attention-bias/1", "slots": str(SLOTS)},
    )
    canonicalize_safetensors(ctx.outputs["code_attention_bias"] / FILE_NAME)
    ctx.log.info("code attention bias written", nonzero=int(np.count_nonzero(bias)))
