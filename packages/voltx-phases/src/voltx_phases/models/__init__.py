"""The model definitions phases share: encoder, decoder, ScaledVFN, slot attention, diffusion
controller and the RAR loop that runs them. Tensor names are the original's (`docs/formats.md`)."""
