"""A contract test suite every phase should pass; subclass it in your plugin's tests.

    from voltx.testing.phase_contract import PhaseContract

    class TestMyPhase(PhaseContract):
        @pytest.fixture
        def phase_spec(self):
            return my_plugin.MY_SPEC

        @pytest.fixture
        def phase_inputs(self, tmp_path):      # only if the phase requires artifacts
            (tmp_path / "corpus.jsonl").write_text(...)
            return {"my_corpus": tmp_path / "corpus.jsonl"}

The phase runs in this process (`InProcessBackend`) against a fresh ``memory://`` store, with the
profile named by `profile` (``tiny`` by default), so the contract runs in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from voltx.config import structure, unstructure
from voltx.config_ranges import unchecked_numeric_fields
from voltx.planning.estimates import spec_hours
from voltx.plugins import host, registered
from voltx.spec import EmptyConfig, PhaseSpec, TrainingWork
from voltx.store import ArtifactStore
from voltx.testing.inprocess import InProcessBackend, memory_store_url, phase_plugin


class PhaseContract:
    """Checks a phase's declaration and that one run produces every declared output."""

    profile = "tiny"

    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        raise NotImplementedError("override the phase_spec fixture to return your PhaseSpec")

    @pytest.fixture
    def phase_inputs(self) -> Mapping[str, Path]:
        return {}

    @pytest.fixture
    def _registered(self, phase_spec: PhaseSpec) -> Iterator[None]:
        known = host().registry().phases.get(phase_spec.id)
        if known is not None:
            # Installed already (through its entry point): use it as installed.
            yield
            return
        with registered(phase_plugin(phase_spec), origin="phase-contract"):
            yield

    def test_config_class_is_frozen_attrs(self, phase_spec: PhaseSpec) -> None:
        assert attrs.has(phase_spec.config_class)
        instance = phase_spec.config_class()
        fields = attrs.fields(phase_spec.config_class)
        if fields:
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                setattr(instance, fields[0].name, getattr(instance, fields[0].name))

    def test_profiles_tiny_and_full(self, phase_spec: PhaseSpec) -> None:
        if phase_spec.config_class is EmptyConfig or not attrs.fields(phase_spec.config_class):
            # No settings, so no profiles to declare: a run under either profile still gets the
            # (empty) config.
            for name in ("tiny", "full"):
                assert isinstance(phase_spec.default_config(name), phase_spec.config_class), name
            return
        assert {"tiny", "full"} <= set(phase_spec.profiles)
        for name, config in phase_spec.profiles.items():
            assert isinstance(config, phase_spec.config_class), name
            data = unstructure(config)
            assert structure(phase_spec.config_class, data, path=phase_spec.id) == config

    def test_numeric_config_fields_have_ranges(self, phase_spec: PhaseSpec) -> None:
        # A value outside its range must be refused when the run is planned, not by the phase's
        # code after minutes of work; plugin loading only warns about these.
        unchecked = unchecked_numeric_fields(phase_spec.config_class)
        assert not unchecked, (
            f"phase {phase_spec.id}: give these numeric config fields a validator "
            f"(e.g. attrs.validators.gt(0)): {', '.join(unchecked)}"
        )

    def test_declaration(self, phase_spec: PhaseSpec) -> None:
        assert phase_spec.produces, "a phase must produce at least one artifact"
        assert not set(phase_spec.requires) & set(phase_spec.produces)
        resources = phase_spec.resources
        assert min(resources.gpus, resources.cpu_cores, resources.ram_gb, resources.disk_gb) >= 0
        assert phase_spec.reference_hours >= 0
        assert phase_spec.description, "describe the phase in one line"

    def test_every_profile_has_an_estimate(self, phase_spec: PhaseSpec) -> None:
        # Plans time a phase from its work when it describes it, else from its declared hours.
        for name in sorted({"tiny", "full", *phase_spec.profiles}):
            config = phase_spec.default_config(name)
            if phase_spec.work is not None:
                work = phase_spec.work(config)
                assert isinstance(work, TrainingWork), name
                assert work.flop > 0 and work.basis, f"{name}: say how the work was counted"
            low, high = spec_hours(phase_spec, name, unstructure(config))
            assert 0 <= low <= high < math.inf, f"{name}: hours {low}..{high}"

    def test_run_produces_every_output_with_lineage(
        self, phase_spec: PhaseSpec, phase_inputs: Mapping[str, Path], _registered: None
    ) -> None:
        from voltx.api import run

        url = memory_store_url()
        store = ArtifactStore.open(url)
        for name, path in phase_inputs.items():
            store.add(name, path)
        result = run(phase_spec.id, backend=InProcessBackend(), store=url, profile=self.profile)
        phase = result.phases[phase_spec.id]
        assert phase.status == "succeeded", phase.reason
        assert set(phase.outputs) == set(phase_spec.produces)
        for name, digest in phase.outputs.items():
            artifact = store.resolve(name)
            assert artifact.digest == digest
            assert artifact.size > 0
            assert artifact.lineage["phase"] == phase_spec.id

        again = run(phase_spec.id, backend=InProcessBackend(), store=url, profile=self.profile)
        assert again.phases[phase_spec.id].status == "skipped"
