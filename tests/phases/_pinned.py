"""Artifacts added to a copy of the tiny model store in place of a phase's real upstream, so a
test of a late phase (4.x, 5.x) does not train every phase before it. Added artifacts are pinned:
the planner does not run their producers."""

from __future__ import annotations

from pathlib import Path

from voltx.store import ArtifactStore

SOFT_CORE_PARTS = ("scaled_vfn", "slot_attention", "diffusion_controller")


def add_soft_core_of_2_1(url: str, folder: Path, name: str) -> None:
    """Add `name` (e.g. `vfn_e2e`, `vfn_500m`) as a folder of 2.1's ScaledVFN, slot attention
    and controller files: the layout every later soft core has."""
    store = ArtifactStore.open(url)
    soft_core = folder / name
    soft_core.mkdir(parents=True)
    for part in SOFT_CORE_PARTS:
        got = store.get(part, folder / "from_2_1" / name / part)
        (soft_core / f"{part}.safetensors").write_bytes((got / f"{part}.safetensors").read_bytes())
    store.add(name, soft_core)


def add_decoder_copies(url: str, folder: Path, names: tuple[str, ...]) -> None:
    """Add each of `names` (5.2's language decoders) as a copy of 1.2's `code_decoder`."""
    store = ArtifactStore.open(url)
    decoder = store.get("code_decoder", folder / "code_decoder")
    for name in names:
        store.add(name, decoder)
