"""The scale family: 5.1 (VFN scaling), 5.2a/b/c (a decoder per language) and 5.3 (benchmarks)."""
