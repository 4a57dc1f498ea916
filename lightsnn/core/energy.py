"""The energy model every cost in lightsnn is priced with, written once: ``evaluate`` on our networks and the
benchmark study on SpikeNAS-Bench's trained ones.

E = 0.9 pJ per accumulate (a synaptic operation: a spike times a weight) + 4.6 pJ per multiply-accumulate
(real-valued inputs), 32-bit float at 45 nm (Horowitz, ISSCC 2014), as spikingjelly's
``SimpleEnergyCostConfig.fp32``.
"""
from __future__ import annotations

E_AC_PJ = 0.9
E_MAC_PJ = 4.6
ENERGY_MODEL = f"E = {E_AC_PJ} pJ x SynOps + {E_MAC_PJ} pJ x MACs (Horowitz, ISSCC 2014, 45 nm fp32)"


def energy_pj(synops: float, macs: float) -> float:
    """Picojoules of ``synops`` accumulates and ``macs`` multiply-accumulates."""
    return synops * E_AC_PJ + macs * E_MAC_PJ
