"""The hard core family: the parts of Volt X that read a frame without training the VFN (the
intent router over strands, the certainty engine and the safety axioms), and the calibration
metric their 3.x phases report. `docs/phases.md` ("Hard core") describes each piece and its
constants. Library code only; nothing here imports torch."""
