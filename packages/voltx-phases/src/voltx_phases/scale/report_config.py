"""Config of phase 5.3, the benchmark report (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import between, non_negative, positive, seed

# The model 5.3 evaluates: 1.x's tokenizer, encoder and decoder with the 0.4 bias, the soft core
# of 5.1's largest student (`vfn_500m`, a folder of the ScaledVFN, slot attention and controller
# files), and for the MultiPL-E rows of a language, 5.2's decoder of that language
# (docs/phases.md, 5.3).
SOFT_CORE = "vfn_500m"
SOFT_CORE_PARTS = ("scaled_vfn", "slot_attention", "diffusion_controller")
TRANSLATOR = ("code_tokenizer", "code_encoder", "code_decoder", "code_attention_bias")
LANGUAGE_DECODERS = {
    "javascript": "code_decoder_javascript",
    "java": "code_decoder_java",
    "rust": "code_decoder_rust_go",
    "go": "code_decoder_rust_go",
}
MODEL_INPUTS = (*TRANSLATOR, SOFT_CORE, *sorted(set(LANGUAGE_DECODERS.values())))


def _ks(_instance: object, _attribute: attrs.Attribute[tuple[int, ...]], value: object) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or any(not isinstance(k, int) or k < 1 for k in value)
    ):
        raise ValueError(f"must be a non-empty list of whole numbers >= 1, got {value!r}")


@attrs.frozen
class BenchmarkReportConfig:
    """Phase 5.3: sample every benchmark problem `samples_per_problem` times, run the samples'
    tests in the sandbox, and report pass@k (k above the sample count is left out)."""

    samples_per_problem: int = attrs.field(default=200, validator=positive())
    ks: tuple[int, ...] = attrs.field(default=(1, 10, 100), validator=_ks)
    # Codex's and HumanEval's sampling for pass@k at n = 200 (the paper's best pass@100 setting
    # is a higher temperature, but one setting for every k keeps the samples shared).
    temperature: float = attrs.field(default=0.8, validator=non_negative())
    top_p: float = attrs.field(default=0.95, validator=between(0, 1))
    max_tokens: int = attrs.field(default=0, validator=non_negative())  # 0: the decoder's limit
    max_iterations: int = attrs.field(default=50, validator=positive())
    # 0 evaluates every problem; a cap takes each benchmark's first problems in file order.
    max_problems: int = attrs.field(default=0, validator=non_negative())
    # Problems generated at once: their n samples are one batch of the decoder.
    batch_problems: int = attrs.field(default=8, validator=positive())
    test_timeout_s: float = attrs.field(default=10.0, validator=positive())
    sandbox_workers: int = attrs.field(default=0, validator=non_negative())  # 0: one per CPU
    seed: int = attrs.field(default=0, validator=seed())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())  # 0: torch's default


REPORT_PROFILES = {
    "tiny": BenchmarkReportConfig(
        samples_per_problem=4,
        max_tokens=48,
        max_iterations=10,
        max_problems=4,
        test_timeout_s=5.0,
        threads=1,
    ),
    "full": BenchmarkReportConfig(),
}
