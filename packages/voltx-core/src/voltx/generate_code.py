"""Generating code with a trained model from the store: `voltx.generate` and `voltx generate`.

    import voltx
    problems = voltx.generate("Write a function that returns the sum of a list", n=4)
    for sample in problems[0].samples:
        print(sample.confidence, sample.code)

voltx itself never imports torch: the generator a plugin registers (`voltx.GeneratorSpec`) names
the artifacts it is made of and its entry as "module:function". `generate` resolves those
artifacts in the store (the latest of each, or the digests given), writes them out to a
temporary folder (linked, not copied, from a local store), imports the entry, and calls it with
a `GenerationRequest`. voltx-phases registers ``volt_x``, the Volt X model (docs/phases.md,
"Inference").
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from voltx.errors import GenerationError, MissingArtifactError, PluginError, did_you_mean
from voltx.generation import GenerationRequest, GeneratorEntry, GeneratorSpec, ProblemSamples
from voltx.session import open_session

DEFAULT_GENERATOR = "volt_x"


def generate(
    prompts: str | Sequence[str],
    *,
    n: int = 1,
    temperature: float = 0.8,
    top_p: float = 0.95,
    max_tokens: int = 0,
    max_iterations: int = 50,
    seed: int = 0,
    device: str = "auto",
    store: str | None = None,
    config: str | None = None,
    digests: Mapping[str, str] | None = None,
    generator: str = DEFAULT_GENERATOR,
) -> list[ProblemSamples]:
    """`n` code samples for each prompt, from the store's latest artifacts (or `digests`: artifact
    name -> digest or digest prefix) of `generator`'s model. `store` and `config` are as for
    `voltx.run` (default: the nearest project's store, ./.voltx without one).

    A missing artifact raises `MissingArtifactError`, which names it and the phase that makes it.
    """
    session = open_session(store=store, config=config)
    spec = _generator(session.registry.generators, generator)
    chosen = dict(digests or {})
    unknown = sorted(set(chosen) - {*spec.requires, *spec.optional})
    if unknown:
        raise GenerationError(
            f"generator {spec.name!r} does not use {', '.join(unknown)}; it reads "
            f"{', '.join((*spec.requires, *spec.optional))}"
        )
    resolved: dict[str, str] = {}
    for name in spec.requires:
        reference = chosen.get(name, name)
        if reference == name and session.store.ref(name) is None:
            producer = session.graph.producer.get(name)
            raise MissingArtifactError(name, session.store.url, producer, f"generate ({spec.name})")
        resolved[name] = session.store.resolve(reference).digest
    for name in spec.optional:
        reference = chosen.get(name, name)
        if reference != name or session.store.ref(name) is not None:
            resolved[name] = session.store.resolve(reference).digest
    entry = _load_entry(spec, session.registry.generator_origin.get(spec.name, "unknown"))
    texts = (prompts,) if isinstance(prompts, str) else tuple(prompts)
    with tempfile.TemporaryDirectory(prefix="voltx-generate-") as folder:
        paths = {
            name: session.store.get(digest, Path(folder) / name, link=True)
            for name, digest in resolved.items()
        }
        request = GenerationRequest(
            prompts=texts,
            artifacts=paths,
            digests=resolved,
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            max_iterations=max_iterations,
            seed=seed,
            device=device,
        )
        return list(entry(request))


def _generator(known: Mapping[str, GeneratorSpec], name: str) -> GeneratorSpec:
    if name in known:
        return known[name]
    if not known:
        raise GenerationError(
            "no generator is registered: install voltx-phases (pip install voltx-phases)"
        )
    installed = ", ".join(sorted(known))
    raise GenerationError(
        f"unknown generator {name!r}{did_you_mean(name, known)} (installed: {installed})"
    )


def _load_entry(spec: GeneratorSpec, origin: str) -> GeneratorEntry:
    if callable(spec.entry):
        return spec.entry
    module_name, _, attribute = spec.entry.partition(":")
    try:
        entry: GeneratorEntry = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        message = f"generator {spec.name!r} of {origin!r}: cannot load {spec.entry!r}: {exc}"
        raise PluginError(message, origin) from exc
    return entry
