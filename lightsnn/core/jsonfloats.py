"""JSON has no NaN or infinity: result files spell them as the strings "nan", "inf" and "-inf".

One encoder for writing and one decoder for reading, so every result file and every reader agree.
"""
from __future__ import annotations

import math

NON_FINITE = ("nan", "inf", "-inf")


def encode_non_finite(value):
    """``value`` with every non-finite float replaced by its string spelling (nested dicts and lists too)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: encode_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_non_finite(v) for v in value]
    return value


def decode_non_finite(value):
    """The inverse of :func:`encode_non_finite`: the spellings become floats again."""
    if isinstance(value, dict):
        return {k: decode_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_non_finite(v) for v in value]
    if isinstance(value, str) and value in NON_FINITE:
        return float(value)
    return value
