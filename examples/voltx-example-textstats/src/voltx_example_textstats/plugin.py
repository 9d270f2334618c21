"""Registers the example's phases. Only specs and configs here: no work happens at import."""

from __future__ import annotations

import attrs

import voltx
from voltx import EmptyConfig, PhaseSpec, Resources
from voltx.hookspecs import RegisterPhase


@attrs.frozen
class CorpusConfig:
    """Which files make the corpus."""

    # Each field declares its valid range, so a bad value is refused before the run starts.
    max_files: int = attrs.field(default=2000, validator=attrs.validators.gt(0))
    # Empty means the standard library of the Python running the phase.
    source_dir: str = ""
    seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))


@attrs.frozen
class TokenConfig:
    """How many of the most frequent tokens the report keeps."""

    top_k: int = attrs.field(default=50, validator=attrs.validators.gt(0))


PHASES = (
    PhaseSpec(
        id="ex.corpus",
        name="collect corpus",
        family="example",
        entry="voltx_example_textstats.phases:collect_corpus",
        produces=("ex_corpus",),
        config_class=CorpusConfig,
        profiles={"tiny": CorpusConfig(max_files=40), "full": CorpusConfig()},
        resources=Resources(cpu_cores=1, ram_gb=0.5),
        reference_hours=0.01,
        description="Python source files sampled from the standard library into one JSONL file",
    ),
    PhaseSpec(
        id="ex.tokens",
        name="count tokens",
        family="example",
        entry="voltx_example_textstats.phases:count_tokens",
        requires=("ex_corpus",),
        produces=("ex_token_counts",),
        config_class=TokenConfig,
        profiles={"tiny": TokenConfig(top_k=20), "full": TokenConfig()},
        reference_hours=0.02,
        description="Token kinds and the most frequent names, with Python's own tokenizer",
    ),
    PhaseSpec(
        id="ex.lines",
        name="line statistics",
        family="example",
        entry="voltx_example_textstats.phases:line_stats",
        requires=("ex_corpus",),
        produces=("ex_line_stats",),
        config_class=EmptyConfig,
        reference_hours=0.01,
        description="Line counts, lengths, blank and comment lines per file",
    ),
    PhaseSpec(
        id="ex.report",
        name="report",
        family="example",
        entry="voltx_example_textstats.phases:write_report",
        requires=("ex_token_counts", "ex_line_stats"),
        produces=("ex_report",),
        config_class=EmptyConfig,
        reference_hours=0.01,
        description="A Markdown report joining both analyses",
    ),
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
