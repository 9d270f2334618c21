"""voltx.testing's fixtures, used the way a plugin's own tests would use them."""

from __future__ import annotations

from voltx import PhaseSpec
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, phase_plugin, registered_plugin

pytest_plugins = ["voltx.testing.fixtures"]


def _write(ctx: object) -> None:
    (ctx.outputs["greeting"] / "hello.txt").write_text("hello")  # type: ignore[attr-defined]


def test_memory_store_and_inprocess_backend(
    memory_store: ArtifactStore, inprocess_backend: InProcessBackend
) -> None:
    import voltx

    spec = PhaseSpec(id="t.greet", name="greet", entry=_write, produces=("greeting",))
    with registered_plugin(phase_plugin(spec)):
        result = voltx.run("t.greet", backend=inprocess_backend, store=memory_store.url)
    assert result.ok
    assert memory_store.resolve("greeting").files[0].path == "hello.txt"
