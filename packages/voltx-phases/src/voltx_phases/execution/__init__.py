"""Running code voltx did not write (generated problems, dataset solutions, model samples) in a
sandbox: phase 0.2 uses it now; calibration, fine-tuning and benchmarks will."""
