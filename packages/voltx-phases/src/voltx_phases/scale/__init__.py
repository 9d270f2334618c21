"""The scale family: 5.1 (VFN growth and distillation, data parallel), 5.2a/b/c (a decoder per
language) and 5.3 (the benchmark report); docs/phases.md."""
