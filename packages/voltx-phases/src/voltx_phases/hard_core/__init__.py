"""The hard core family: the parts of Volt X that read a frame without training the VFN (the
intent router over strands, the certainty engine and the safety axioms), the calibration metric,
and phases 3.1-3.3 that calibrate them. `docs/phases.md` ("Hard core", 3.1-3.3) describes each
piece and its constants. The library pieces (vectors, strands, router, certainty, safety,
calibration, pipeline, and the files' readers) are numpy only; the phases' training modules
import torch, and `specs.py` imports neither."""
