"""The alignment family: phases 4.1 (end-to-end fine-tuning on test results), 4.2 (RLVF
alignment) and 4.3 (sleep consolidation), each from the previous one's soft core
(`docs/phases.md`, 4.x)."""
