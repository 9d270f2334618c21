"""A test plugin: phases 5.2a/b/c, for runs before `voltx_phases.plugin` registers them itself.

Registers only the language phases the installed plugin does not already declare, so tests keep
working once the scale family's specs are merged into it. Where no installed phase produces the
VFN the language phases read (5.1's `vfn_500m`), they read 2.1's three artifacts instead, which
hold the same files. Loaded in-process with
`voltx.plugins.registered`, and in worker subprocesses through ``VOLTX_PLUGINS=language_phases``
with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import attrs

import voltx
from voltx import PhaseSpec
from voltx.hookspecs import RegisterArtifactCheck, RegisterPhase
from voltx_phases import plugin
from voltx_phases.scale.specs_languages import (
    ARTIFACT_CHECKS,
    LANGUAGE_PHASES,
    VFN_ARTIFACT,
    VFN_PARTS,
)

_DECLARED = {spec.id for spec in plugin.PHASES}
_PRODUCED = {name for spec in plugin.PHASES for name in spec.produces}


def _reading_an_available_vfn(spec: PhaseSpec) -> PhaseSpec:
    if VFN_ARTIFACT in _PRODUCED:
        return spec
    requires = [name for name in spec.requires if name != VFN_ARTIFACT]
    return attrs.evolve(spec, requires=(*requires, *VFN_PARTS))


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in LANGUAGE_PHASES:
        if spec.id not in _DECLARED:
            register(_reading_an_available_vfn(spec))


@voltx.hookimpl
def register_artifact_checks(register: RegisterArtifactCheck) -> None:
    for name, check in ARTIFACT_CHECKS.items():
        if name not in plugin.ARTIFACT_CHECKS:
            register(name, check)
