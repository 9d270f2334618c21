"""Phase 2: the soft core. Frame cache, ScaledVFN flow matching, slot attention, diffusion."""
