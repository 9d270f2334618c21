"""Weights files are byte-identical across processes, so content addressing sees no change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = """
import sys, torch
from pathlib import Path
from safetensors.torch import load_file
from voltx_phases._common.weights import save_tensors
torch.manual_seed(0)
tensors = {"b": torch.randn(3, 4), "a": torch.arange(5.0)}
save_tensors(tensors, Path(sys.argv[1]), {"format": "pt", "zeta": "1", "alpha": "2", "mid": "3"})
assert set(load_file(sys.argv[1])) == {"a", "b"}
"""


def test_same_tensors_same_bytes_in_every_process(tmp_path: Path) -> None:
    outputs = []
    for index in range(4):
        path = tmp_path / f"w{index}.safetensors"
        subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True)
        outputs.append(path.read_bytes())
    assert all(data == outputs[0] for data in outputs)
