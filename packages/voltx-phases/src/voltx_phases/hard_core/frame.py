"""The part of a frame the hard core reads: each slot's R0 vector, whether the slot is present,
and its certainty gamma. Models keep richer frames (`docs/formats.md`); they hand the hard core this
view of one sample.

    frame = SlotFrame.from_arrays(r0=data[0, :, 0, :], present=present[0, :, 0], gamma=gamma[0])
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.vectors import SLOT_DIM

MAX_SLOTS = 16


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class SlotFrame:
    """One sample's slots: `r0` [S, D] float32, `present` [S] bool, `gamma` [S] float32.

    The arrays are copies made read-only, so a frame cannot change under a decision made on it.
    An absent slot's vector and gamma are ignored by every reader."""

    r0: np.ndarray
    present: np.ndarray
    gamma: np.ndarray

    @classmethod
    def from_arrays(
        cls, r0: np.ndarray, present: np.ndarray, gamma: np.ndarray | None = None
    ) -> SlotFrame:
        """Check shapes and copy; `gamma` defaults to 1.0 for every slot."""
        vectors = np.array(r0, dtype=np.float32)
        mask = np.array(present, dtype=bool)
        if vectors.ndim != 2 or vectors.shape[1] != SLOT_DIM:
            raise ValueError(f"r0 must be [slots, {SLOT_DIM}], got {vectors.shape}")
        if mask.shape != (vectors.shape[0],):
            raise ValueError(f"present must be [{vectors.shape[0]}], got {mask.shape}")
        certainty = (
            np.ones(vectors.shape[0], dtype=np.float32)
            if gamma is None
            else np.array(gamma, dtype=np.float32)
        )
        if certainty.shape != mask.shape:
            raise ValueError(f"gamma must be [{vectors.shape[0]}], got {certainty.shape}")
        return cls(r0=_readonly(vectors), present=_readonly(mask), gamma=_readonly(certainty))

    @classmethod
    def empty(cls, slots: int = MAX_SLOTS) -> SlotFrame:
        """A frame with no present slot and gamma 0 everywhere: what the safety veto returns."""
        return cls.from_arrays(
            r0=np.zeros((slots, SLOT_DIM), dtype=np.float32),
            present=np.zeros(slots, dtype=bool),
            gamma=np.zeros(slots, dtype=np.float32),
        )

    @property
    def present_slots(self) -> np.ndarray:
        """Indices of the present slots, ascending."""
        return np.flatnonzero(self.present)
