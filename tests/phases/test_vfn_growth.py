"""Phase 5.1's growth: widening the ScaledVFN keeps its velocity, and the copies can diverge."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape, parameter_count  # noqa: E402
from voltx_phases.scale.growth import widen  # noqa: E402

TINY = VfnShape(hidden_dim=64, num_blocks=2, time_freqs=4)


def _teacher() -> ScaledVFN:
    torch.manual_seed(0)
    teacher = ScaledVFN(TINY)
    # Trained weights are not the initial ones: perturb the norms' gains away from 1.
    with torch.no_grad():
        for name, parameter in teacher.named_parameters():
            if name.endswith("norm.weight"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return teacher.eval()


@pytest.mark.parametrize("factor", [2, 3])
def test_widened_student_has_the_teachers_velocity(factor: int) -> None:
    teacher = _teacher()
    student = widen(teacher, factor, split_noise=0.5, seed=7).eval()
    assert student.shape.hidden_dim == factor * TINY.hidden_dim
    x = torch.randn(200, 256, generator=torch.Generator().manual_seed(1)) * 3
    t = torch.rand(200, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, grown = teacher(x, t), student(x, t)
    assert torch.allclose(grown, expected, atol=1e-5, rtol=1e-4), (grown - expected).abs().max()


def test_copies_get_different_gradients_so_they_can_diverge() -> None:
    teacher = _teacher()
    student = widen(teacher, 2, split_noise=0.5, seed=7)
    x = torch.randn(32, 256, generator=torch.Generator().manual_seed(3))
    t = torch.rand(32, generator=torch.Generator().manual_seed(4))
    student(x, t).pow(2).sum().backward()
    grad = student.block_0.fc1.weight.grad
    assert grad is not None
    hidden = TINY.hidden_dim
    # Hidden unit u and its copy u + H compute the same value; their gradients differ.
    assert not torch.allclose(grad[:hidden], grad[hidden:])


def test_growth_is_reproducible_and_refuses_a_fractional_factor() -> None:
    teacher = _teacher()
    first = widen(teacher, 2, seed=5).state_dict()
    second = widen(teacher, 2, seed=5).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    with pytest.raises(ValueError, match="positive integer"):
        widen(teacher, 1.5)  # type: ignore[arg-type]


def test_the_plan_sizes_by_the_scaled_vfn_formula() -> None:
    assert parameter_count(VfnShape(hidden_dim=4096)) == 204_034_304
    assert parameter_count(VfnShape(hidden_dim=6144)) == 457_046_272
