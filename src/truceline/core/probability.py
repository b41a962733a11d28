"""Probabilities as analysts state them: the ICD 203 likelihood terms, vectorised."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

__all__ = ["ICD203_TERMS", "VIOLATION_P", "icd203_term", "normal_cdf"]

#: A finding at or above this probability counts as a violation (ICD 203: "roughly even chance"
#: and above), in the statistics, the review queue and the daily report.
VIOLATION_P = 0.5

#: Upper bounds of the ICD 203 (US Intelligence Community Directive 203) likelihood bands.
ICD203_TERMS: tuple[tuple[float, str], ...] = (
    (0.05, "almost no chance"),
    (0.20, "very unlikely"),
    (0.45, "unlikely"),
    (0.55, "roughly even chance"),
    (0.80, "likely"),
    (0.95, "very likely"),
    (1.0000001, "almost certain"),
)


def icd203_term(p: ArrayLike) -> NDArray[np.str_]:
    """The ICD 203 term for each probability (``0.97 -> 'almost certain'``).

    >>> icd203_term([0.03, 0.5, 0.9]).tolist()
    ['almost no chance', 'roughly even chance', 'very likely']
    """
    bounds = np.array([b for b, _ in ICD203_TERMS])
    names = np.array([n for _, n in ICD203_TERMS])
    idx = np.searchsorted(bounds, np.asarray(p, dtype=np.float64), side="right")
    return names[np.minimum(idx, len(names) - 1)]


def normal_cdf(x: ArrayLike) -> NDArray[np.float64]:
    """Standard normal CDF; +-inf map to 1 and 0 (a zero-width uncertainty is a hard answer)."""
    return np.asarray(ndtr(np.asarray(x, dtype=np.float64)), dtype=np.float64)
