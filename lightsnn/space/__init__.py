"""The search space: ops and their registry, the LIF neuron, the one genotype type, the SNASNet cell, the
macro network and supernet, and sampling of valid cells.

Shapes, once: networks take ``[B, C, H, W]`` static images or ``[T, B, C, H, W]`` event frames and return
``[B, classes]``. May import: :mod:`lightsnn.core`, spikingjelly, torch.
"""
