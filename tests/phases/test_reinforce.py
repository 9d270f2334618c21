"""REINFORCE, the policy's log-probability and the shaped rewards of phases 4.x."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from voltx_phases.alignment.reinforce import EmaBaseline, reinforce_loss  # noqa: E402
from voltx_phases.alignment.rewards import (  # noqa: E402
    RewardShaping,
    ScoringPool,
    score_report,
)
from voltx_phases.alignment.rollouts import (  # noqa: E402
    PolicySettings,
    draw,
    reasoned_states,
    sequence_logprobs,
)
from voltx_phases.execution.limits import SandboxLimits  # noqa: E402
from voltx_phases.execution.results import TestOutcome, TestReport  # noqa: E402
from voltx_phases.models.decoder import CodeDecoder, DecoderShape  # noqa: E402
from voltx_phases.models.diffusion_controller import DiffusionController  # noqa: E402
from voltx_phases.models.rar import RarModels  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.models.slot_attention import SlotAttention  # noqa: E402
from voltx_phases.models.vocabulary import EOS_ID  # noqa: E402


def _decoder(seed: int = 0) -> CodeDecoder:
    torch.manual_seed(seed)
    decoder = CodeDecoder(DecoderShape(vocab_size=12, embed_dim=16, ffn_dim=32, max_len=8))
    with torch.no_grad():
        decoder.token_embed.normal_(0.0, 0.3)
    return decoder.requires_grad_(False)


def _frames(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    query = torch.nn.functional.normalize(torch.randn(batch, 16, 256, generator=generator), dim=-1)
    present = torch.zeros(batch, 16, dtype=torch.bool)
    present[:, :3] = True
    return query * present[:, :, None], present


def test_reinforce_raises_the_probability_of_the_rewarded_sequence() -> None:
    """A fixed reward favouring one of two sequences; the trainable part is the context the
    frozen decoder reads, as in 4.1."""
    decoder = _decoder()
    query, present = _frames(batch=1)
    context = torch.nn.Parameter(query.clone())
    favoured, other = (5, 6, EOS_ID), (7, EOS_ID)
    rewards = {favoured: 1.0, other: 0.0}
    optimizer = torch.optim.Adam([context], lr=0.02)
    baseline = EmaBaseline(decay=0.9)

    def probability(row: tuple[int, ...]) -> float:
        with torch.no_grad():
            return float(sequence_logprobs(decoder, context, present, [row], [0], 1.0).exp())

    before = probability(favoured)
    for _ in range(20):
        rows = [favoured, other]
        log_pi = sequence_logprobs(decoder, context, present, rows, [0, 0], 1.0)
        advantages = baseline.advantages([rewards[row] for row in rows], clip=2.0)
        optimizer.zero_grad()
        reinforce_loss(log_pi, advantages).backward()
        optimizer.step()
    assert probability(favoured) > before * 10
    assert probability(favoured) > probability(other)


def test_sampled_and_teacher_forced_log_probabilities_agree() -> None:
    decoder = _decoder()
    rar = RarModels(ScaledVFN(VfnShape(64, 1, 4)), SlotAttention(), DiffusionController())
    query, present = _frames()
    settings = PolicySettings(rar_steps=2, temperature=0.8, max_tokens=6)
    states = reasoned_states(rar, query, present, settings, seed=1)
    rollout = draw(decoder, states, present, 3, settings, seed=2)
    assert rollout.problems == (0, 0, 0, 1, 1, 1)
    log_pi = sequence_logprobs(
        decoder, states, present, rollout.ids, rollout.problems, settings.temperature
    )
    assert log_pi.tolist() == pytest.approx(rollout.logprobs, abs=1e-4)
    # The gradient reaches the RAR's modules through the decoder's context.
    log_pi.sum().backward()
    assert rar.vfn.entry.weight.grad is not None
    assert float(rar.vfn.entry.weight.grad.abs().sum()) > 0
    again = draw(
        decoder, reasoned_states(rar, query, present, settings, 1), present, 3, settings, 2
    )
    assert again == rollout  # seeded


def test_baseline_and_clipping() -> None:
    baseline = EmaBaseline(decay=0.9)
    assert baseline.advantages([1.0, 0.0], clip=2.0) == [0.5, -0.5]
    assert baseline.value == 0.5
    assert baseline.advantages([5.0, -5.0], clip=2.0) == [2.0, -2.0]
    assert baseline.value == pytest.approx(0.45)


def test_stale_samples_are_down_weighted() -> None:
    log_pi = torch.tensor([-1.0, -1.0], requires_grad=True)
    drawn = torch.tensor([-1.0, -0.5])  # the second was likelier under the old weights
    reinforce_loss(log_pi, [1.0, 1.0], drawn).backward()
    assert log_pi.grad is not None
    weights = (-log_pi.grad * 2).tolist()
    assert weights == pytest.approx([1.0, float(torch.exp(torch.tensor(-0.5)))])


def _report(*failures: str | None) -> TestReport:
    return TestReport(
        "python",
        tuple(
            TestOutcome(index, failure is None, failure, "", 0.0)  # type: ignore[arg-type]
            for index, failure in enumerate(failures)
        ),
    )


@pytest.mark.parametrize(
    ("failures", "reward", "outcome", "compiled"),
    [
        ((None, None), 1.0, "passed", True),
        ((None, "wrong_answer"), 0.5, "partial", True),
        (("wrong_answer", "runtime_error"), -0.3, "wrong_answer", True),
        (("runtime_error", "timeout"), -0.6, "runtime_error", True),
        (("memory",), -0.6, "runtime_error", True),
        (("compile_error", "compile_error"), -1.0, "compile_error", False),
    ],
)
def test_shaped_reward_ranks_outcomes(
    failures: tuple[str | None, ...], reward: float, outcome: str, compiled: bool
) -> None:
    scored = score_report(_report(*failures), RewardShaping())
    assert (scored.reward, scored.outcome, scored.compiled) == (reward, outcome, compiled)


def test_shaping_out_of_order_is_refused() -> None:
    with pytest.raises(ValueError, match="compile_error < runtime_error < wrong_answer"):
        RewardShaping(compile_error=-0.1, runtime_error=-0.6, wrong_answer=-0.3)


def test_scoring_pool_keys_results_by_batch() -> None:
    limits = SandboxLimits(timeout_s=2.0)
    with ScoringPool(RewardShaping(), limits, workers=2) as pool:
        pool.submit(1, [("def f(): return 1", ["assert f() == 1"]), ("def f(", ["assert f()"])])
        pool.submit(2, [("x = 1", ["assert f() == 1"])])
        second = pool.result(2)
        first = pool.result(1)
    assert [s.outcome for s in first] == ["passed", "compile_error"]
    assert [s.outcome for s in second] == ["runtime_error"]
