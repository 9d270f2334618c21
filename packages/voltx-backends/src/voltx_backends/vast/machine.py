"""What a rented machine must be: reachable with the run's key, and what the job was rented for.

`onstart_script` is what an instance runs as it starts (it lets voltx log in); `machine_problems`
compares what the first login probed (GPUs, their memory, CUDA) with what the offer promised, so
that the provisioner can replace an instance short of it (`voltx_backends.vast.provision`).
"""

from __future__ import annotations

import shlex

from voltx.spec import Resources
from voltx_backends.ssh._scripts import HostInfo
from voltx_backends.vast.offers import MB_PER_GB
from voltx_backends.vast.settings import VastSettings


def onstart_script(public_key: str, extra: str = "") -> str:
    """The script the instance runs at start: let voltx log in with the run's key.

    ``.no_auto_tmux`` keeps Vast's images from wrapping every SSH login in tmux, which would
    swallow the exit status of voltx's commands. SSH sessions do not see the container's
    environment (Vast's docs), so the image's PATH and CUDA variables are handed to them through
    ``/etc/environment``; only those, never the user's ``env`` (which may hold secrets), and only
    inside a Vast container (it sets ``VAST_CONTAINERLABEL``).
    """
    key = shlex.quote(public_key.strip())
    script = f"""\
# voltx: log in with this run's key, without the tmux wrapper.
touch ~/.no_auto_tmux
mkdir -p ~/.ssh && chmod 700 ~/.ssh
touch ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys
grep -qxF {key} ~/.ssh/authorized_keys || echo {key} >> ~/.ssh/authorized_keys
if [ -n "${{VAST_CONTAINERLABEL:-}}" ]; then
    env | grep -E '^(PATH|LD_LIBRARY_PATH|CUDA_[A-Z_]*|NVIDIA_[A-Z_]*)=' >> /etc/environment || true
fi
"""
    return script + (extra.rstrip() + "\n" if extra.strip() else "")


def _version(text: str) -> tuple[int, ...]:
    """``"12.4"`` as ``(12, 4)``, so that 12.10 sorts after 12.9; ``()`` when not a version."""
    parts = text.strip().split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else ()


def machine_problems(info: HostInfo, resources: Resources, settings: VastSettings) -> list[str]:
    """How the probed host falls short of what a job needing `resources` was rented for.

    The same measures as the offer search (`OfferQuery.build`): GPU count (the phase's, or the
    settings' ``num_gpus`` if more), memory per GPU in the search's MB (nvidia-smi's MiB, as Vast
    reports it), and the newest CUDA the driver supports against ``min_cuda``. Empty when the job
    needs no GPU: nothing is checked then.
    """
    if resources.gpus <= 0:
        return []
    problems: list[str] = []
    wanted_gpus = max(resources.gpus, settings.num_gpus or 0)
    found = info.gpu_memories_gb
    if len(found) < wanted_gpus:
        problems.append(f"expected {wanted_gpus} GPU(s), found {len(found)}")
    wanted_gb = max(resources.gpu_memory_gb, settings.min_gpu_memory_gb or 0.0)
    if wanted_gb > 0:
        wanted_mib = wanted_gb * MB_PER_GB
        # 0 is nvidia-smi's "[N/A]": memory unknown, not missing.
        short = [round(gb * 1024) for gb in found if 0 < gb * 1024 < wanted_mib]
        if short:
            problems.append(
                f"expected at least {wanted_mib:g} MiB of memory per GPU ({wanted_gb:g} GB), "
                f"found {', '.join(f'{mib} MiB' for mib in short)}"
            )
    if settings.min_cuda is not None:
        wanted_cuda = f"{settings.min_cuda:g}"
        have = _version(info.cuda)
        if not have:
            problems.append(f"expected CUDA {wanted_cuda} or newer, found no CUDA version")
        elif have < _version(wanted_cuda):
            problems.append(f"expected CUDA {wanted_cuda} or newer, found CUDA {info.cuda}")
    return problems
