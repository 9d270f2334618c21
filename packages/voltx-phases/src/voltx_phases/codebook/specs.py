"""Phase spec of 0.3, the codebook (torch-free: planning imports this)."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.codebook.config import CODEBOOK_PROFILES, CodebookConfig

# A `codebook_code.bin` written by the original is checked (header, size, finite unit rows) when
# added; the check needs only numpy.
ARTIFACT_CHECKS = {"codebook_code": "voltx_phases.codebook.codebook_file:check_codebook_file"}

PHASES = (
    PhaseSpec(
        id="0.3",
        name="codebook",
        family="codebook",
        entry="voltx_phases.codebook.codebook_building:run",
        requires=("code_tokenizer", "code_encoder", "stack_python"),
        produces=("codebook_code", "codebook_hnsw"),
        config_class=CodebookConfig,
        profiles=CODEBOOK_PROFILES,
        # k-means is CPU work (faiss): 5.4e13 FLOP an iteration at full size.
        resources=Resources(cpu_cores=32, ram_gb=64, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        reference_hours=1.5,
        description=(
            "R0 slot vectors of up to 100K corpus files, k-means (faiss) to 65,536 entries: "
            "codebook_code.bin and an HNSW index over it"
        ),
    ),
)
