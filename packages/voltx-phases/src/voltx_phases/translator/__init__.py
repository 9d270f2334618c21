"""The translator family: 1.1 (BPE tokenizer, CNN code encoder with 1.3's role grounding) and 1.2
(the code decoder); the models themselves are in `voltx_phases.models`."""
