"""What every layer uses and nothing of lightsnn's: option type checks, atomic file writes, the allocator, the
checks of paths and sizes, the energy model, the statistics (rank correlations, paired tests).

May import: the standard library, numpy, scipy (statistics), torch. Nothing else of lightsnn.
"""
