"""The settings of phase 0.2 (the dataset pipeline) and its profiles.

Imports only attrs: the plugin module reads this to plan a run, and planning must stay cheap
(no torch, no dataset code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


def _at_least(minimum: int) -> Callable[[Any, attrs.Attribute[int], int], None]:
    def check(_instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, got {value}")

    return check


@attrs.frozen
class DatasetConfig:
    """What phase 0.2 reads, generates and keeps."""

    # Problems the embedded generator keeps when raw datasets are missing. 30 is the least that
    # still gives every split (two held-out benchmarks, three APPS difficulties) a problem.
    generated_count: int = attrs.field(default=400, validator=_at_least(30))
    # Seed of the embedded generator: the same seed and count give byte-identical files.
    seed: int = 0
    # Files kept in the `stack_python` corpus, from `raw_stack` or the standard library.
    corpus_max_files: int = attrs.field(default=2_000_000, validator=_at_least(1))
    # The original's Stack reader kept files of 50 to 50,000 bytes (`docs/phases.md`, 0.2).
    corpus_min_bytes: int = 50
    corpus_max_bytes: int = 50_000
    # Stop at the first malformed line (file:line: reason), or skip and count such lines.
    skip_bad_lines: bool = False
    # Put HumanEval and MBPP into `code_training_combined`, as the original did (421 = 164 + 257).
    # Turn off to keep both benchmarks out of training for an uncontaminated phase 5.3.
    combine_benchmarks: bool = True
    # Wall-clock limit for one generated problem's tests in the sandbox.
    test_timeout_s: float = 10.0
    # Sandboxed programs validated at once; 0 means one per CPU the phase may use.
    validate_workers: int = 0


DATASET_PROFILES = {
    # A few seconds on 2 cores: 60 generated problems and 200 standard-library files.
    "tiny": DatasetConfig(generated_count=60, corpus_max_files=200),
    "full": DatasetConfig(),
}
