"""The machine pool's placement arithmetic (voltx_backends.vast.pool): pure, no Vast needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from voltx.backend import PhaseSlot
from voltx.spec import Resources
from voltx_backends.vast.pool import (
    MachineShape,
    Share,
    choose_packing,
    combined,
    hinted_idle_window,
    idle_window_s,
    index_ranges,
    pinned_argv,
    place,
    place_all,
    share_env,
)
from voltx_backends.vast.pool_plan import OfferChoice, describe, plan_machines

# The quick-start's machine: an RTX 5090 with 192 cores.
BIG = MachineShape(gpus=1, gpu_memory_gb=32, cpu_cores=192, ram_gb=512, disk_gb=500)
TOKENIZE = Resources(cpu_cores=190, ram_gb=64, disk_gb=50)  # 0.3: CPU only
TRAIN = Resources(gpus=1, gpu_memory_gb=24, cpu_cores=2, ram_gb=32, disk_gb=50)  # 2.1


def test_offer_fields_make_the_shape() -> None:
    raw = {"num_gpus": 2, "gpu_ram": 24564, "cpu_cores_effective": 16.0, "cpu_ram": 64000}
    shape = MachineShape.from_offer(raw, disk_gb=40)
    assert shape == MachineShape(gpus=2, gpu_memory_gb=24.564, cpu_cores=16, ram_gb=64, disk_gb=40)


def test_cpu_and_gpu_phase_share_the_quick_start_machine_without_overlap() -> None:
    shares = place_all(BIG, [TOKENIZE, TRAIN])
    assert shares is not None
    tokenize, train = shares
    assert tokenize.gpus == () and train.gpus == (0,)
    assert tokenize.cpus == tuple(range(190)) and train.cpus == (190, 191)
    assert not set(tokenize.cpus) & set(train.cpus)


@pytest.mark.parametrize(
    ("wanted", "why"),
    [
        (Resources(gpus=1, gpu_memory_gb=24, cpu_cores=3), "cores"),
        (Resources(gpus=2, gpu_memory_gb=1), "GPUs"),
        (Resources(gpus=1, gpu_memory_gb=40), "GPU memory"),
        (Resources(cpu_cores=1, ram_gb=450), "RAM"),
        (Resources(cpu_cores=1, disk_gb=451), "disk"),
    ],
)
def test_a_job_short_of_any_resource_is_not_placed(wanted: Resources, why: str) -> None:
    taken = place(BIG, (), TOKENIZE)
    assert taken is not None
    assert place(BIG, [taken], wanted) is None, why


def test_a_freed_share_is_given_again() -> None:
    first = place(BIG, (), TRAIN)
    assert first is not None
    assert place(BIG, [first], TRAIN) is None  # the one GPU is taken
    assert place(BIG, [], TRAIN) == first


def test_combined_adds_up_and_keeps_the_largest_gpu_memory() -> None:
    assert combined([TOKENIZE, TRAIN]) == Resources(
        gpus=1, gpu_memory_gb=24, cpu_cores=192, ram_gb=96, disk_gb=100
    )


def test_packing_wins_when_one_big_machine_costs_less_than_two() -> None:
    # 0.3 for 1 h and 2.1 for 3 h; a CPU box at $0.30 and a GPU box at $0.40, or both on one
    # machine at $0.50 for the 3 h the longer one takes. Each rental pays 0.25 h of prep.
    choice = choose_packing([1.0, 3.0], [0.30, 0.40], 0.50, prep_hours=0.25)
    assert choice.packed
    assert choice.packed_dollars == pytest.approx(0.50 * 3.25)
    assert choice.separate_dollars == pytest.approx(0.30 * 1.25 + 0.40 * 3.25)
    assert choice.saving == pytest.approx(choice.separate_dollars - choice.packed_dollars)


def test_packing_loses_to_cheap_small_machines_and_without_an_offer() -> None:
    assert not choose_packing([1.0, 1.0], [0.1, 0.1], 0.5).packed
    assert not choose_packing([1.0, 1.0], [0.1, 0.1], None).packed


def test_idle_window_follows_the_next_phase_up_to_the_cap() -> None:
    assert idle_window_s(120.0) == 120.0
    assert idle_window_s(120.0, expected_next_s=30.0) == 30.0
    assert idle_window_s(120.0, expected_next_s=900.0) == 120.0


def test_hinted_idle_window_waits_for_a_phase_that_fits_and_no_longer() -> None:
    now, grace = 1000.0, 5.0
    big_gpu = Resources(gpus=1, gpu_memory_gb=80)

    def window(*upcoming: tuple[Resources, float | None]) -> float:
        return hinted_idle_window(120.0, BIG, upcoming, now, grace)

    # Nothing still to start fits the machine: only the grace.
    assert window() == grace
    assert window((big_gpu, None)) == grace
    # A fitting phase expected in 30 s (the unfitting one does not count); one overdue gets the
    # grace; one far off, or of unknown time, the cap.
    assert window((TRAIN, now + 30.0), (big_gpu, now + 1.0)) == 30.0
    assert window((TRAIN, now - 10.0)) == grace
    assert window((TRAIN, now + 900.0)) == 120.0
    assert window((TRAIN, now + 30.0), (TOKENIZE, None)) == 120.0


def test_index_ranges() -> None:
    assert index_ranges([0, 1, 2, 3, 6, 8, 9]) == "0-3,6,8-9"
    assert index_ranges([]) == ""


def test_share_env_names_the_gpus_and_narrows_thread_pools() -> None:
    env = share_env(Share(gpus=(1,), cpus=(4, 5, 6)))
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["VOLTX_CPU_SHARE"] == "4-6"
    assert env["OMP_NUM_THREADS"] == "3"
    assert share_env(Share(cpus=(0,)))["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sched_setaffinity is Linux's")
def test_pinned_argv_runs_the_command_on_its_cores_under_its_memory_cap() -> None:
    code = (
        "import os, resource; "
        "print(sorted(os.sched_getaffinity(0)), resource.getrlimit(resource.RLIMIT_AS)[0])"
    )
    argv = pinned_argv(
        sys.executable,
        Share(cpus=(0,), ram_gb=4.0),
        (sys.executable, "-c", code),
        limit_memory=True,
    )
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    first = sorted(os.sched_getaffinity(0))[0]
    assert output.split() == [f"[{first}]", str(4 * 2**30)]
    # A GPU job gets no address-space cap (CUDA reserves far beyond its use).
    argv = pinned_argv(
        sys.executable, Share(gpus=(0,), cpus=(0,), ram_gb=4.0), ("true",), limit_memory=True
    )
    assert argv[4] == "0"


def _offers(resources: Resources) -> OfferChoice | None:
    """A many-core GPU machine at $0.20, a 64-core box at $0.15 (too small for 0.3 and 2.1)."""
    if resources.gpus == 0 and resources.cpu_cores <= 64:
        return OfferChoice("box", MachineShape(1, 12, 64, 128, 500), 0.15)
    return OfferChoice("5090", BIG, 0.20) if place(BIG, (), resources) else None


def test_plan_packs_concurrent_phases_and_reuses_the_machine_for_the_chain() -> None:
    slots = [
        PhaseSlot("0.3", TOKENIZE, 0.0, 1.5),
        PhaseSlot("2.1", TRAIN, 0.0, 100.0),
        PhaseSlot("4.1", TRAIN, 100.0, 110.0),
        PhaseSlot("4.2", TRAIN, 110.0, 112.0),
    ]
    plan = plan_machines(slots, _offers, prep_h=0.25, idle_h=0.1)
    (machine,) = plan.machines
    assert machine.phases == ("0.3", "2.1", "4.1", "4.2")
    assert machine.rented_h == -0.25 and machine.released_h == 112.0
    assert plan.dollars == pytest.approx(0.20 * 112.25)
    # One each (the 5090 for every one of them: 0.3 wants 190 cores), every one with its prep.
    per_phase = 0.20 * (1.75 + 100.25 + 10.25 + 2.25)
    assert plan.per_phase_dollars == pytest.approx(per_phase)
    text = describe(plan)
    assert "runs 0.3, 2.1, 4.1, 4.2" in text[1] and "prep 0:15" in text[1]
    assert "pooling saves $" in text[2]


def test_plan_rents_again_after_the_idle_window() -> None:
    slots = [PhaseSlot("a", TRAIN, 0.0, 1.0), PhaseSlot("b", TRAIN, 2.0, 3.0)]
    plan = plan_machines(slots, _offers, prep_h=0.0, idle_h=0.5)
    assert [m.phases for m in plan.machines] == [("a",), ("b",)]
    assert plan_machines(slots, _offers, prep_h=0.0, idle_h=1.5).machines[0].phases == ("a", "b")
