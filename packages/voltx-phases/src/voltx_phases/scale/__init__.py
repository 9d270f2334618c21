"""The scale family: 5.1 (VFN growth and distillation, data parallel) and 5.3 (the benchmark
report); docs/phases.md."""
