"""Phase 0 and 1: data, tokenizer, encoder, decoder, codebook, attention bias."""
