"""Registers the Volt X phases: the families' specs and artifact checks, concatenated.

Specs only: the training code is named by each spec's `entry` and imported by the worker, the
artifact checks are named by "module:function" and imported when a file is added, and the
generator's entry is imported by `voltx generate`.
"""

from __future__ import annotations

import voltx
from voltx.hookspecs import RegisterArtifactCheck, RegisterGenerator, RegisterPhase
from voltx_phases import generation
from voltx_phases.alignment import specs as alignment
from voltx_phases.codebook import specs as codebook
from voltx_phases.datasets import specs as datasets
from voltx_phases.hard_core import specs as hard_core
from voltx_phases.soft_core import specs as soft_core
from voltx_phases.translator import specs as translator

# In pipeline order, so `voltx phases` lists them as they run.
_FAMILIES = (datasets, translator, codebook, soft_core, hard_core, alignment)

PHASES = tuple(spec for family in _FAMILIES for spec in family.PHASES)

ARTIFACT_CHECKS = {
    name: check for family in _FAMILIES for name, check in family.ARTIFACT_CHECKS.items()
}


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)


@voltx.hookimpl
def register_artifact_checks(register: RegisterArtifactCheck) -> None:
    for name, check in ARTIFACT_CHECKS.items():
        register(name, check)


@voltx.hookimpl
def register_generators(register: RegisterGenerator) -> None:
    register(generation.GENERATOR)
