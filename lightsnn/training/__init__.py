"""Training a found architecture (checkpoints, resume, fingerprints) and the evaluation metrics (accuracy,
spiking activity rate, memory, synaptic operations, energy, latency).

May import: :mod:`lightsnn.core`, :mod:`lightsnn.space`, :mod:`lightsnn.data`.
"""
