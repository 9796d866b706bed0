"""Sample-ratio mismatch: are the arm sizes what the weights promised?

A mismatch (say 50.8% / 49.2% on a 50/50 split of 200,000 participants) signals broken
assignment or logging, and then every effect estimate is suspect. The check is Pearson's
chi-square goodness of fit of the observed counts against ``total * weight / sum(weights)``
(``scipy.stats.chisquare``). The default flag, p < 0.001, is deliberately strict: the check
runs on every experiment at every refresh, so 0.05 would cry wolf often, while real mismatches
from broken assignment are usually extreme (Fabijan et al. 2019, "Diagnosing Sample Ratio
Mismatch in Online Controlled Experiments", KDD, list their causes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from xngin.stats.errors import StatsInputError

__all__ = ["SrmResult", "sample_ratio_mismatch"]


@dataclass(frozen=True)
class SrmResult:
    """Outcome of the sample-ratio check.

    Attributes
    ----------
    p_value : float
        Chi-square goodness-of-fit p-value, in [0, 1].
    ok : bool
        ``p_value >= threshold``.
    observed : tuple of int
        Participants per arm.
    expected : tuple of float
        Participants per arm the weights imply for the observed total.
    statistic : float
        Pearson chi-square statistic.
    df : int
        Degrees of freedom (arms with positive weight minus 1).
    threshold : float
        The p-value below which the split is flagged.
    """

    p_value: float
    ok: bool
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    df: int
    threshold: float


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], *, threshold: float = 0.001
) -> SrmResult:
    """Chi-square test of observed arm counts against the arm weights.

    Parameters
    ----------
    observed : sequence of int
        Participants per arm, >= 0, in arm order.
    weights : sequence of float
        Relative arm weights, >= 0 with a positive sum, same order and length.
    threshold : float
        Flag the split when the p-value is below this, in (0, 1); default 0.001.

    Returns
    -------
    SrmResult
        An arm with weight 0 but participants is a certain mismatch (p = 0); an experiment with
        no participants yet is not flagged (p = 1).
    """
    if not 0 < threshold < 1:
        raise StatsInputError(
            f"threshold must be between 0 and 1 (exclusive), got {threshold!r}", field="threshold"
        )
    counts = np.asarray(observed)
    shares = np.asarray(weights, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 1 or not np.issubdtype(counts.dtype, np.integer):
        raise StatsInputError(
            f"observed must list whole-number counts per arm, got {list(observed)!r}",
            field="observed",
        )
    if np.any(counts < 0):
        raise StatsInputError(
            f"observed counts must be >= 0, got {counts.tolist()}", field="observed"
        )
    if shares.shape != counts.shape:
        raise StatsInputError(
            f"weights must give one weight per arm ({counts.size}), got {shares.size}",
            field="weights",
        )
    if not np.all(np.isfinite(shares)) or np.any(shares < 0) or shares.sum() <= 0:
        raise StatsInputError(
            f"weights must be >= 0 with a positive sum, got {shares.tolist()}", field="weights"
        )
    total = int(counts.sum())
    expected = total * shares / shares.sum()
    positive = shares > 0
    df = int(positive.sum()) - 1
    if np.any(counts[~positive] > 0):
        # Participants in an arm meant to receive nobody cannot happen by chance.
        statistic, p_value = math.inf, 0.0
    elif total == 0 or df == 0:
        statistic, p_value = 0.0, 1.0
    else:
        test = scipy_stats.chisquare(counts[positive], expected[positive])
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return SrmResult(
        p_value=p_value,
        ok=p_value >= threshold,
        observed=tuple(int(c) for c in counts),
        expected=tuple(float(e) for e in expected),
        statistic=statistic,
        df=df,
        threshold=threshold,
    )
