"""A phase's GPU model as a Ray resource (docs/ray.md, "Accelerator types").

Ray gives a node whose GPUs it recognises a custom resource ``accelerator_type:<model>`` of 1
(``accelerator_type:H100``), and a cluster's operator can declare one for any node
(``ray start --resources``). A task that asks for a sliver of it lands only on such a node, and
the sliver leaves the node's other jobs room to ask too: Ray's own convention.
"""

from __future__ import annotations

from voltx.spec import Resources

ACCELERATOR_PREFIX = "accelerator_type:"
# What one job takes of a node's accelerator-type resource: only a marker, never exhausted.
ACCELERATOR_SHARE = 0.001


def accelerator_resource(wanted: Resources) -> dict[str, float]:
    """The Ray resource that puts a job on a node with the phase's GPU model, if it names one."""
    if not wanted.accelerator:
        return {}
    return {f"{ACCELERATOR_PREFIX}{wanted.accelerator}": ACCELERATOR_SHARE}
