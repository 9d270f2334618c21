"""The settings of phase 0.2 (the dataset pipeline) and its profiles.

Imports only attrs: the plugin module reads this to plan a run, and planning must stay cheap
(no torch, no dataset code).
"""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import at_least, non_negative, not_below, positive, seed


@attrs.frozen
class DatasetConfig:
    """What phase 0.2 reads, generates and keeps."""

    # Problems the embedded generator keeps when raw datasets are missing. 30 is the least that
    # still gives every split (two held-out benchmarks, three APPS difficulties) a problem.
    generated_count: int = attrs.field(default=400, validator=at_least(30))
    # Seed of the embedded generator: the same seed and count give byte-identical files.
    seed: int = attrs.field(default=0, validator=seed())
    # Files kept in the `stack_python` corpus, from `raw_stack` or the standard library.
    corpus_max_files: int = attrs.field(default=2_000_000, validator=at_least(1))
    # The original's Stack reader kept files of 50 to 50,000 bytes (`docs/phases.md`, 0.2).
    corpus_min_bytes: int = attrs.field(default=50, validator=non_negative())
    corpus_max_bytes: int = attrs.field(
        default=50_000, validator=attrs.validators.and_(positive(), not_below("corpus_min_bytes"))
    )
    # Stop at the first malformed line (file:line: reason), or skip and count such lines.
    skip_bad_lines: bool = False
    # Put HumanEval and MBPP into `code_training_combined`, as the original did (421 = 164 + 257).
    # Turn off to keep both benchmarks out of training for an uncontaminated phase 5.3.
    combine_benchmarks: bool = True
    # Wall-clock limit for one generated problem's tests in the sandbox.
    test_timeout_s: float = attrs.field(default=10.0, validator=positive())
    # Sandboxed programs validated at once; 0 means one per CPU the phase may use.
    validate_workers: int = attrs.field(default=0, validator=non_negative())


DATASET_PROFILES = {
    # A few seconds on 2 cores: 60 generated problems and 200 standard-library files.
    "tiny": DatasetConfig(generated_count=60, corpus_max_files=200),
    "full": DatasetConfig(),
}
