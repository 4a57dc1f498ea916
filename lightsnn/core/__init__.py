"""What every layer uses and nothing of lightsnn's: option type checks, atomic file writes, the allocator.

May import: the standard library, numpy, torch. Nothing else of lightsnn.
"""
