"""lightsnn: training-free architecture search for spiking neural networks."""
__version__ = "0.1.0"
