"""The soft core family: 0.4 (the code attention bias), 2.0 (problem frames) and 2.1 (ScaledVFN
flow matching, jointly training 2.2's slot attention and 2.3's diffusion controller)."""
