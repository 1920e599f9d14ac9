"""Query-time work: the engine, first stages, compiled kernels, MaxSim, BM25, fusion, shard sets."""
