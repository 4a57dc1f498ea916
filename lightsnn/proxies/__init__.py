"""Training-free scores of architectures at initialisation (SAHD and its plain-Hamming baseline) and the
search batches every scoring reads its data through.

May import: :mod:`lightsnn.core`, :mod:`lightsnn.space`, :mod:`lightsnn.data`.
"""
