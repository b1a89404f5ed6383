"""The seeded numpy sub-streams and the inverse-sampling helpers every draw goes through."""

from __future__ import annotations

import math

import numpy as np


# =========================================================================== random streams


def stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """The sub-stream of one purpose (STREAM_*) and site; independent of every other."""
    return np.random.default_rng([seed, purpose, index])


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (math.erf, element-wise; no scipy needed)."""
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(np.asarray(z, dtype=float) / np.sqrt(2.0)).astype(float))


def choice_from_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn by inverse sampling from a cumulative distribution."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _weights_cdf(weights: dict[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    c = np.cumsum(p / p.sum())
    c[-1] = 1.0
    return names, c
