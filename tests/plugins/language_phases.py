"""A test plugin: phases 5.2a/b/c, for runs before `voltx_phases.plugin` registers them itself.

Registers only the language phases the installed plugin does not already declare, so tests keep
working once the scale family's specs are merged into it. Loaded in-process with
`voltx.plugins.registered`, and in worker subprocesses through ``VOLTX_PLUGINS=language_phases``
with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import voltx
from voltx.hookspecs import RegisterArtifactCheck, RegisterPhase
from voltx_phases import plugin
from voltx_phases.scale.specs_languages import ARTIFACT_CHECKS, LANGUAGE_PHASES

_DECLARED = {spec.id for spec in plugin.PHASES}


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in LANGUAGE_PHASES:
        if spec.id not in _DECLARED:
            register(spec)


@voltx.hookimpl
def register_artifact_checks(register: RegisterArtifactCheck) -> None:
    for name, check in ARTIFACT_CHECKS.items():
        if name not in plugin.ARTIFACT_CHECKS:
            register(name, check)
