"""Billable machine-seconds of the runbook's Vast plans: pooled machines over one rental per phase.

    python bench/vast_prep.py [--repeat 5] [--boot 2] [--bootstrap 1] [--phase 1]

On the fake Vast API of the tests (tests/backends/fake_vast.py: real sshd "instances" on
127.0.0.1), two plans of the runbooks run as sleep jobs with the phases' resources:

- the quick-start's 0.3 (CPU only) and 2.1 (one GPU) started together;
- the cloud plan's 4.1 -> 4.2 -> 4.3, one GPU each, each started when the one before ends (as the
  scheduler does).

Each rental's prep is simulated: the fake boots an instance in `--boot` seconds, and the
bootstrap (voltx's install, standing in for the upload of its inputs as well) takes
`--bootstrap` seconds. A machine is billed from its rent call until it is destroyed (the fake
records both), idle time included. Each plan runs on a backend of its own (so the chain does
not reuse the quick-start's machine) and ends the way a run ends, by closing the backend. One
side rents per phase (``pool = false``), the other pools (``pool = true``, a 0.3 s gather
window, a 0.5 s idle window); the two sides alternate in each repeat. The last line is the
median over repeats of pooled / per-phase seconds, both plans together.
"""

from __future__ import annotations

import argparse
import getpass
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "backends"))

TOKENIZE = {"cpu_cores": 12, "ram_gb": 8.0}  # 0.3: the cores, no GPU
TRAIN = {"gpus": 1, "gpu_memory_gb": 16.0, "cpu_cores": 2, "ram_gb": 16.0}  # 2.1, 4.x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--boot", type=float, default=2.0, help="seconds until an instance runs")
    parser.add_argument("--bootstrap", type=float, default=1.0, help="install + upload seconds")
    parser.add_argument("--phase", type=float, default=1.0, help="seconds each phase sleeps")
    args = parser.parse_args()

    from fake_vast import FakeVast

    from voltx._logging import configure_logging
    from voltx.backend import JobRequest, JobState
    from voltx.spec import Resources
    from voltx.testing.backend_contract import wait_finished
    from voltx_backends.ssh import backend as ssh_backend
    from voltx_backends.vast import VastBackend

    configure_logging(json=True, stream=open(os.devnull, "w"), force=True)  # noqa: SIM115

    def slow_install(transport: Any, root: str, python: str, *rest: Any, **options: Any) -> bool:
        time.sleep(args.bootstrap)
        venv = Path(root) / "venv" / "bin"
        venv.mkdir(parents=True, exist_ok=True)
        if not (venv / "python").exists():
            (venv / "python").symlink_to(os.path.realpath(python))
        return True

    # The bench stands in for the bootstrap (building wheels is not what it measures).
    ssh_backend.prepare = lambda *a, **k: object()  # type: ignore[assignment]
    ssh_backend.install = slow_install  # type: ignore[assignment]

    def job(resources: dict[str, Any]) -> JobRequest:
        return JobRequest(
            f"bp-{uuid.uuid4().hex[:10]}",
            ("sh", "-c", f"sleep {args.phase}"),
            resources=Resources(**resources),
        )

    def quick_start(backend: VastBackend) -> None:
        together = [backend.submit(job(TOKENIZE)), backend.submit(job(TRAIN))]
        for handle in together:
            assert wait_finished(handle, 120).state is JobState.SUCCEEDED

    def cloud_chain(backend: VastBackend) -> None:
        for _step in ("4.1", "4.2", "4.3"):
            handle = backend.submit(job(TRAIN))
            assert wait_finished(handle, 120).state is JobState.SUCCEEDED

    def billed(fake: FakeVast, folder: Path, pooled: bool, plan: Any) -> float:
        """One plan on a fresh backend; the billed seconds of every instance it rented."""
        before = {i.id for i in fake.created()}
        backend = VastBackend(
            work_dir=folder / "work",
            poll_s=0.05,
            status_interval_s=0.05,
            request_spacing_s=0.0,
            retry_backoff_s=0.01,
            connect_timeout_s=5,
            ssh_user=getpass.getuser(),
            bootstrap=True,
            python=sys.executable,
            remote_root=str(folder / "remote"),
            image="voltx/bench-image",
            pool=pooled,
            pool_gather_s=0.3,
            pool_idle_s=0.5,
        )
        try:
            plan(backend)
        finally:
            # As at the end of a `voltx run`: closing gives back what is still held (idle).
            backend.close()
        assert not fake.live(), "closing the backend left instances behind"
        mine = [i for i in fake.created() if i.id not in before]
        return sum((i.destroyed_at or time.monotonic()) - i.created for i in mine)

    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeVast(Path(tmp) / "fake", loading_s=args.boot)
        fake.start()
        os.environ["VAST_URL"] = fake.url
        os.environ["VAST_API_KEY"] = fake.api_key
        try:
            for attempt in range(args.repeat):
                sides: dict[tuple[str, bool], float] = {}
                # Alternate which side goes first, so drift on a busy machine evens out.
                order = (False, True) if attempt % 2 == 0 else (True, False)
                for pooled in order:
                    for name, plan in (("0.3 || 2.1", quick_start), ("4.1->4.3", cloud_chain)):
                        folder = Path(tmp) / f"r{attempt}-{pooled}-{plan.__name__}"
                        sides[name, pooled] = billed(fake, folder, pooled, plan)
                pooled_total = sides["0.3 || 2.1", True] + sides["4.1->4.3", True]
                per_phase_total = sides["0.3 || 2.1", False] + sides["4.1->4.3", False]
                ratios.append(pooled_total / per_phase_total)
                each = ", ".join(
                    f"{name}: {sides[name, False]:.2f} -> {sides[name, True]:.2f}"
                    for name in ("0.3 || 2.1", "4.1->4.3")
                )
                print(
                    f"repeat {attempt + 1}: machine-s per-phase -> pooled: {each}; total "
                    f"{per_phase_total:.2f} -> {pooled_total:.2f}, ratio {ratios[-1]:.3f}"
                )
        finally:
            fake.stop()
    spread = max(ratios) - min(ratios)
    print(
        f"boot {args.boot:g} s, bootstrap {args.bootstrap:g} s, phases {args.phase:g} s; "
        f"ratio spread {min(ratios):.3f}..{max(ratios):.3f} ({spread:.3f})"
    )
    print(
        f"pooled / per-phase billable machine-seconds ratio: {statistics.median(ratios):.3f} "
        "(target <= 0.6)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
