"""The codebook family: 0.3, corpus slot vectors to a k-means codebook (the VXCB file) and an HNSW
index over it."""
