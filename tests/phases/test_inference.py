"""The model at inference, on small random models: the decoder's cache, sampling, RAR."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from voltx_phases.models.decoder import CodeDecoder, DecoderShape  # noqa: E402
from voltx_phases.models.diffusion_controller import DiffusionController  # noqa: E402
from voltx_phases.models.encoder import SlotFrames  # noqa: E402
from voltx_phases.models.inference import ReasoningSettings, reason  # noqa: E402
from voltx_phases.models.rar import RarModels, rar_iteration  # noqa: E402
from voltx_phases.models.sampling import (  # noqa: E402
    SamplingSettings,
    sample,
    teacher_forced_logprobs,
)
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.models.slot_attention import SlotAttention  # noqa: E402
from voltx_phases.models.vocabulary import EOS_ID  # noqa: E402


def random_decoder(vocab: int = 64, max_len: int = 40, seed: int = 0) -> CodeDecoder:
    """A decoder whose zero-initialised tables are filled, so that its logits differ."""
    torch.manual_seed(seed)
    decoder = CodeDecoder(DecoderShape(vocab_size=vocab, embed_dim=16, ffn_dim=32, max_len=max_len))
    with torch.no_grad():
        decoder.token_embed.normal_()
        decoder.pos_encoding.normal_(std=0.5)
    return decoder.eval()


def test_greedy_with_and_without_the_cache_gives_identical_ids() -> None:
    decoder = random_decoder()
    context = torch.randn(6, 16, 256)
    mask = torch.rand(6, 16) > 0.3
    mask[:, 0] = True
    cached = decoder.generate(context, eos_id=None, context_mask=mask)
    recomputed = decoder.generate(context, eos_id=None, context_mask=mask, use_cache=False)
    assert cached == recomputed
    assert [len(row) for row in cached] == [40] * 6
    settings = SamplingSettings(temperature=0.0)
    with_cache = sample(decoder, context, mask, settings)
    without = sample(decoder, context, mask, SamplingSettings(temperature=0.0, use_cache=False))
    assert with_cache.ids == without.ids


def test_sampling_with_a_seed_is_reproducible() -> None:
    decoder = random_decoder()
    context = torch.randn(4, 16, 256)
    settings = SamplingSettings(temperature=1.0, top_p=0.9, seed=7)
    first = sample(decoder, context, None, settings)
    again = sample(decoder, context, None, settings)
    assert first == again
    other = sample(decoder, context, None, SamplingSettings(temperature=1.0, top_p=0.9, seed=8))
    assert other.ids != first.ids
    # The cache changes nothing but the speed, sampled draws included.
    uncached = sample(decoder, context, None, SamplingSettings(1.0, 0.9, seed=7, use_cache=False))
    assert uncached.ids == first.ids


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.3])
def test_logprobs_equal_a_teacher_forced_pass(temperature: float) -> None:
    decoder = random_decoder()
    context = torch.randn(3, 16, 256)
    settings = SamplingSettings(temperature=temperature, top_p=0.95, seed=3)
    decoded = sample(decoder, context, None, settings)
    for row in range(3):
        forced = teacher_forced_logprobs(
            decoder, context[row : row + 1], None, decoded.ids[row], settings.policy_temperature
        )
        assert forced.tolist() == pytest.approx(decoded.logprobs[row], abs=1e-4)


def test_a_tiny_nucleus_is_greedy_and_eos_ends_a_sample() -> None:
    decoder = random_decoder(vocab=8, max_len=30)
    context = torch.randn(5, 16, 256)
    greedy = sample(decoder, context, None, SamplingSettings())
    nucleus = sample(decoder, context, None, SamplingSettings(temperature=1.0, top_p=1e-6))
    assert nucleus.ids == greedy.ids
    # With 8 tokens, <eos> (id 3) comes up; a row stops there and keeps its log-probability.
    drawn = sample(decoder, context, None, SamplingSettings(temperature=2.0, seed=1))
    for row in range(5):
        ids = drawn.ids[row]
        assert len(ids) == len(drawn.logprobs[row])
        assert EOS_ID not in ids[:-1]
        if drawn.stopped(row):
            assert drawn.code_ids(row) == ids[:-1]


def test_sampling_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingSettings(temperature=-1.0)
    with pytest.raises(ValueError, match="max_iterations"):
        ReasoningSettings(max_iterations=0)


def small_rar() -> RarModels:
    torch.manual_seed(0)
    return RarModels(
        ScaledVFN(VfnShape(hidden_dim=32, num_blocks=1, time_freqs=4)).eval(),
        SlotAttention().eval(),
        DiffusionController().eval(),
    )


def frames(batch: int = 3) -> SlotFrames:
    generator = torch.Generator().manual_seed(1)
    vectors = torch.nn.functional.normalize(
        torch.randn(batch, 16, 256, generator=generator), dim=-1
    )
    present = torch.ones(batch, 16, dtype=torch.bool)
    present[0, 10:] = False  # the first frame has six empty slots
    if batch > 2:
        present[2] = False  # the third has none filled
    vectors = vectors * present[:, :, None]
    return SlotFrames(vectors, present, present.float())


def test_rar_runs_to_its_budget_and_leaves_empty_slots_alone() -> None:
    start = frames()
    trace = reason(small_rar(), start, ReasoningSettings(max_iterations=7))
    assert trace.iterations.tolist() == [7, 7, 0]  # random weights never settle; nothing to do
    assert not trace.converged[:2][start.present[:2]].any()
    assert trace.converged[~start.present].all()
    assert torch.equal(trace.states[~start.present], start.vectors[~start.present])
    assert (trace.final_deltas[~start.present] == 0).all()
    moved = trace.states[start.present]
    assert torch.allclose(moved.norm(dim=-1), torch.ones(len(moved)), atol=1e-5)
    again = reason(small_rar(), start, ReasoningSettings(max_iterations=7))
    assert torch.equal(again.states, trace.states)  # the noise is seeded


def test_converged_slots_freeze_but_still_inform_the_others() -> None:
    start = frames()
    # A slot converges when its step is under epsilon: with epsilon 10 every slot freezes after
    # its first step, so the loop ends after one iteration.
    trace = reason(small_rar(), start, ReasoningSettings(max_iterations=50, epsilon=10.0))
    assert trace.iterations.tolist() == [1, 1, 0]
    assert trace.converged.all()
    one_step = reason(small_rar(), start, ReasoningSettings(max_iterations=1))
    assert torch.allclose(trace.states, one_step.states)


def test_frozen_slots_stay_put_and_still_serve_as_keys_and_values() -> None:
    start = frames(batch=2)
    rar = small_rar()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    attend = rar.attention.forward

    def recording(states: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        seen.append((states.clone(), active.clone()))
        return attend(states, active)

    rar.attention.forward = recording  # type: ignore[method-assign]
    settings = ReasoningSettings(max_iterations=4)
    trace = reason(rar, start, settings)
    assert len(seen) == 4
    for _, active in seen:
        assert torch.equal(active, start.present)  # every filled slot, converged or not
    # Each moving slot's state changed between iterations; none converged, none stood still.
    for (before, _), (after, _) in itertools.pairwise(seen):
        assert not torch.equal(before[start.present], after[start.present])
    assert trace.iterations.tolist() == [4, 4]
    # One iteration with slot 3 frozen: it does not move, and the other slots' steps are those
    # with slot 3 among the keys and values (not those of a frame without it).
    models = small_rar()
    noise = torch.zeros_like(start.vectors)
    moving = start.present.clone()
    moving[:, 3] = False
    common = {"time": 0.0, "progress": 0.1, "noise": noise, "dt": 0.1, "beta": 0.5}
    delta = torch.zeros(2, 16)
    frozen = rar_iteration(models, start.vectors, start.present, moving, last_delta=delta, **common)
    assert torch.equal(frozen.states[:, 3], start.vectors[:, 3])
    assert (frozen.delta[:, 3] == 0).all()
    everyone = rar_iteration(
        models, start.vectors, start.present, start.present, last_delta=delta, **common
    )
    assert torch.allclose(frozen.states[:, 0], everyone.states[:, 0])
    without = start.present.clone()
    without[:, 3] = False
    absent = rar_iteration(models, start.vectors, without, without, last_delta=delta, **common)
    assert not torch.allclose(frozen.states[:, 0], absent.states[:, 0])


@pytest.mark.parametrize("schedule", ["euler", "budget", "zero"])
def test_time_schedules(schedule: str) -> None:
    settings = ReasoningSettings(max_iterations=20, time_schedule=schedule)  # type: ignore[arg-type]
    times = [settings.time(k) for k in range(1, 21)]
    assert all(0.0 <= t <= 1.0 for t in times)
    assert times == sorted(times)
    if schedule == "euler":
        assert times[0] == 0.0 and times[10] == 1.0 and times[-1] == 1.0
