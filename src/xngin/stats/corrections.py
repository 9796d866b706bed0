"""Multiple-testing corrections over a family of comparisons (all metric x arm p-values).

Holm (1979, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6)
controls the family-wise error rate under any dependence; Benjamini & Hochberg (1995, JRSS B 57,
"step-up" procedure) controls the false discovery rate under independence or positive dependence.
Both are reported as adjusted p-values: compare each with alpha as if it were the only test.
Missing p-values (``None`` or NaN, e.g. a metric that failed) are left out of the family and stay
missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from xngin.stats.errors import StatsInputError

__all__ = ["CorrectionMethod", "adjust_p_values", "benjamini_hochberg", "holm"]

CorrectionMethod = Literal["holm", "bh", "bonferroni", "none"]


def holm(p_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Holm step-down adjusted p-values for a complete family (no missing values).

    The i-th smallest p-value becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def benjamini_hochberg(p_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Benjamini–Hochberg step-up adjusted p-values (q-values) for a complete family.

    The i-th smallest p-value becomes ``min_{j >= i} min(1, m p_(j) / j)``.
    """
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * m / np.arange(1, m + 1)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted


def adjust_p_values(
    p_values: Sequence[float | None], *, method: CorrectionMethod = "holm"
) -> tuple[float | None, ...]:
    """Adjust a family of p-values, skipping missing ones.

    Parameters
    ----------
    p_values : sequence of float or None
        Raw p-values in [0, 1]; ``None`` or NaN marks a comparison without a p-value.
    method : {"holm", "bh", "bonferroni", "none"}
        ``"bh"`` is Benjamini–Hochberg.

    Returns
    -------
    tuple of float or None
        Adjusted p-values in the input order; missing stay ``None``. Equals statsmodels
        ``multipletests(..., method="holm" | "fdr_bh" | "bonferroni")`` on the present values.
    """
    present = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    values = np.array([p_values[i] for i in present], dtype=np.float64)
    if np.any((values < 0) | (values > 1)):
        raise StatsInputError(
            f"p-values must lie in [0, 1], got {values[(values < 0) | (values > 1)].tolist()}",
            field="p_values",
        )
    if method == "holm":
        adjusted = holm(values)
    elif method == "bh":
        adjusted = benjamini_hochberg(values)
    elif method == "bonferroni":
        adjusted = np.minimum(1.0, values * values.size)
    elif method == "none":
        adjusted = values
    else:
        raise StatsInputError(
            f"method must be one of holm, bh, bonferroni, none; got {method!r}", field="method"
        )
    result: list[float | None] = [None] * len(p_values)
    for index, value in zip(present, adjusted, strict=True):
        result[index] = float(value)
    return tuple(result)
