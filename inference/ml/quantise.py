"""Feature vectors on the wire and in storage: one uint8 per value over the fixed range [0, 6].

The CNN chunk ends in ReLU6 followed by average pooling, so every feature lies in [0, 6];
a fixed affine code (step 6/255, about 0.024) needs no per-vector header and lets the
server check the range of what browsers send for free.
"""

from __future__ import annotations

import numpy as np

LOW = 0.0
HIGH = 6.0
STEP = (HIGH - LOW) / 255.0
QUANTISATION = {"dtype": "uint8", "min": LOW, "max": HIGH}


def quantise(features: np.ndarray) -> np.ndarray:
    """float32[..., D] -> uint8[..., D]: round to the nearest step, clip to the range."""
    values = np.asarray(features, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError("features must be finite")
    return np.clip(np.rint((values - LOW) / STEP), 0, 255).astype(np.uint8)


def dequantise(codes: np.ndarray) -> np.ndarray:
    """uint8[..., D] -> float32[..., D]."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise ValueError(f"expected uint8 codes, got {codes.dtype}")
    return (codes.astype(np.float32) * np.float32(STEP) + np.float32(LOW)).astype(np.float32)
