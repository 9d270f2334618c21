"""Configs of phases 5.2a (JavaScript), 5.2b (Java) and 5.2c (Rust + Go), with their profiles.

Torch-free: the specs import this to plan a run. One config class per phase, differing only in
the default `languages`, so a run without a profile still trains the phase's own languages.
Every field can be set from ``voltx.toml`` or the command line, e.g.
``voltx run 5.2b --set 5.2b.generated_per_language=200 --set 5.2b.epochs=5``.

``full`` is the plan's staging (`docs/phases.md`, 5.2): 2,000 JavaScript problems, 1,000 Java,
1,000 Rust and Go together, beside each language's Stack files, 10 epochs, the decoder's
context of 256 positions; ``tiny`` is a few small generated problems per language and two
epochs, seconds on one core.
"""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import between, fraction, non_negative, positive, seed

SUPPORTED_LANGUAGES = ("javascript", "java", "rust", "go")


def _languages(
    _instance: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    if not value:
        raise ValueError("must name at least one language")
    unknown = [name for name in value if name not in SUPPORTED_LANGUAGES]
    if unknown:
        raise ValueError(
            f"unknown language {unknown[0]!r} (known: {', '.join(SUPPORTED_LANGUAGES)})"
        )
    if len(set(value)) != len(value):
        raise ValueError("names a language twice")


@attrs.frozen
class LanguageDecoderConfig:
    """A language decoder: 1.2's decoder, initialised from `code_decoder`, trained on one or
    two languages' code over the frozen encoder's frames."""

    languages: tuple[str, ...] = attrs.field(
        default=("javascript",), converter=tuple, validator=_languages
    )
    # Problems generated per language (`language_problems.py`) when `raw_language_problems`
    # holds none in the language; validated in the sandbox before use.
    generated_per_language: int = attrs.field(default=1000, validator=positive())
    # Every n-th problem of each language is held out: validation token accuracy and the
    # sandbox pass rate are measured on those.
    held_out_every: int = attrs.field(default=5, validator=attrs.validators.ge(2))
    # Stack files per language added to the training samples; 0 means none are read.
    max_corpus_files: int = attrs.field(default=100_000, validator=non_negative())
    # Longest target; 0 keeps `code_decoder`'s. A longer one extends the position table with
    # zero rows (how 1.2 initialises it): Java and Go need more tokens than Python.
    max_len: int = attrs.field(default=256, validator=non_negative())
    append_eos: bool = True
    # Ignore padding in the loss and the accuracy (1.2's `mask_padding`).
    mask_padding: bool = True

    batch_size: int = attrs.field(default=32, validator=positive())
    epochs: int = attrs.field(default=10, validator=positive())
    # Fine-tuning from `code_decoder`: a tenth of 1.2's peak.
    lr: float = attrs.field(default=3e-5, validator=positive())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    warmup_steps: int = attrs.field(default=200, validator=non_negative())
    min_lr_ratio: float = attrs.field(default=0.01, validator=fraction())

    valid_batches: int = attrs.field(default=50, validator=positive())
    # Held-out problems decoded and run in the sandbox per language; 0 means all of them.
    max_pass_rate_problems: int = attrs.field(default=200, validator=non_negative())
    sandbox_timeout_s: float = attrs.field(default=10.0, validator=between(0.1, 600))
    # Sandboxed programs at once; 0 means one per CPU the phase may use.
    sandbox_workers: int = attrs.field(default=0, validator=non_negative())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=500, validator=positive())
    seed: int = attrs.field(default=42, validator=seed())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())


@attrs.frozen
class JavaScriptDecoderConfig(LanguageDecoderConfig):
    """Phase 5.2a: JavaScript; the plan's 2,000 problems."""

    generated_per_language: int = attrs.field(default=2000, validator=positive())


@attrs.frozen
class JavaDecoderConfig(LanguageDecoderConfig):
    """Phase 5.2b: Java."""

    languages: tuple[str, ...] = attrs.field(
        default=("java",), converter=tuple, validator=_languages
    )


@attrs.frozen
class RustGoDecoderConfig(LanguageDecoderConfig):
    """Phase 5.2c: Rust and Go in one decoder; the plan's 1,000 problems, half each."""

    languages: tuple[str, ...] = attrs.field(
        default=("rust", "go"), converter=tuple, validator=_languages
    )
    generated_per_language: int = attrs.field(default=500, validator=positive())


def _tiny(config_class: type[LanguageDecoderConfig], per_language: int) -> LanguageDecoderConfig:
    return config_class(
        generated_per_language=per_language,
        held_out_every=3,
        max_corpus_files=50,
        max_len=0,
        batch_size=2,
        epochs=4,
        # A few steps from a Python decoder: a big step so the language shows in them.
        lr=5e-3,
        warmup_steps=1,
        valid_batches=4,
        log_every_steps=1,
        checkpoint_every_steps=2,
        threads=1,
    )


LANGUAGE_PROFILES = {
    "5.2a": {"tiny": _tiny(JavaScriptDecoderConfig, 6), "full": JavaScriptDecoderConfig()},
    "5.2b": {"tiny": _tiny(JavaDecoderConfig, 6), "full": JavaDecoderConfig()},
    "5.2c": {"tiny": _tiny(RustGoDecoderConfig, 3), "full": RustGoDecoderConfig()},
}
