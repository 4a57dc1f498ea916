"""Training-free scores of architectures at initialisation: the registry of proxies (:mod:`.registry`), the
built-in ones (:mod:`.builtin`, computed in :mod:`.sahd` and :mod:`.measures`) and the one engine that computes
every kind (:mod:`.engine`).

May import: :mod:`lightsnn.core`, :mod:`lightsnn.space`, :mod:`lightsnn.data`.
"""
