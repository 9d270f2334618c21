"""Phases 4.x: end-to-end fine-tuning on test results, RLVF alignment and sleep consolidation."""
