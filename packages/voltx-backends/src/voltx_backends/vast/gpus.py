"""How fast a rented GPU trains against the reference GPU the phase hours are quoted for (H100).

The ratio is the GPUs' dense bf16 tensor throughput from their vendors' data sheets (FP16 on
cards without bf16), H100 SXM = 1.0. A peak-throughput ratio is a first guess: memory bandwidth
and the model's shape move real training away from it, which is why a plan prefers the
measured durations a finished phase leaves behind (`voltx.planning.estimates`) once it has them.
"""

from __future__ import annotations

# Dense bf16 TFLOPS (no sparsity), as the vendors list them.
_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIE": 756.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100 SXM4": 312.0,
    "A100 PCIE": 312.0,
    "A100X": 312.0,
    "A800 PCIE": 312.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "A40": 150.0,
    "A10": 125.0,
    "RTX 6000ADA": 365.0,
    "RTX A6000": 155.0,
    "RTX 5090": 210.0,
    "RTX 4090": 165.0,
    "RTX 4080": 97.0,
    "RTX 3090": 71.0,
    "RTX 3080": 60.0,
    "Tesla V100": 125.0,
}
_REFERENCE_TFLOPS = _TFLOPS["H100 SXM"]


def relative_speed(gpu_name: str) -> float:
    """The GPU's speed over an H100 SXM; 1.0 for a model this table does not know."""
    key = gpu_name.replace("_", " ").strip()
    tflops = _TFLOPS.get(key)
    if tflops is None:
        # Vast names some models with a suffix ("A100 SXM4 80GB"): the longest known prefix.
        prefixes = [name for name in _TFLOPS if key.startswith(name)]
        tflops = _TFLOPS[max(prefixes, key=len)] if prefixes else None
    return tflops / _REFERENCE_TFLOPS if tflops is not None else 1.0
