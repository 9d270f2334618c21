"""A tiny store for the alignment phases' tests: the pipeline's own tiny 1.2 and 2.1 (and
everything upstream), plus the three artifacts 4.2 reads from phases 3.2, 3.3 and 4.1, written
by those phases' writers (`vfn_e2e` as 2.1's soft core, in the same formats), so the tests do not
train 3.2, 3.3 and 4.1 as well."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from _pinned import add_soft_core_of_2_1

from voltx.store import ArtifactStore
from voltx_phases.hard_core import safety_file
from voltx_phases.hard_core.gamma_curve import GammaCurve
from voltx_phases.hard_core.safety import Axiom, default_axioms

# Raw confidences of the tiny model are geometric-mean token probabilities of a 512-token vocab
# (about 1e-3): the curve spreads them over the whole table, so rewards differ between samples.
GAMMA_RAW = np.array([0.0, 1e-3, 3e-3, 1.0], dtype=np.float32)
GAMMA_CALIBRATED = np.array([0.1, 0.4, 0.85, 0.95], dtype=np.float32)


def write_gamma_curve(
    path: Path, raw: np.ndarray = GAMMA_RAW, calibrated: np.ndarray = GAMMA_CALIBRATED
) -> Path:
    GammaCurve(raw=raw, calibrated=calibrated, method="isotonic").write(path)
    return path


def write_axioms(path: Path, threshold: float = 0.99) -> Path:
    """K1-K5 as random unit vectors, all with `threshold` (0.99: nothing is vetoed)."""
    vectors = np.random.default_rng(3).standard_normal((5, 256)).astype(np.float32)
    axioms = [
        Axiom(axiom.name, vectors[index], threshold, axiom.severity)
        for index, axiom in enumerate(default_axioms())
    ]
    safety_file.write_axioms(path, axioms)
    return path


def build_store(root: Path, tiny_model_store: str) -> str:
    """A copy of the session's tiny model store (tests/phases/conftest.py) with 4.1's, 3.2's and
    3.3's artifacts added; the copy's URL."""
    store_path = root / "store"
    shutil.copytree(tiny_model_store, store_path, symlinks=True)
    add_soft_core_of_2_1(str(store_path), root / "pinned", "vfn_e2e")
    store = ArtifactStore.open(str(store_path))
    store.add("gamma_calibration", write_gamma_curve(root / "gamma_calibration.safetensors"))
    store.add("safety_axioms", write_axioms(root / "safety_axioms.safetensors"))
    return str(store_path)
