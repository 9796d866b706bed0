"""Per-arm sufficient statistics: the numbers the warehouse computes so Python never sees rows.

Each class holds plain sums (a ``COUNT``/``SUM`` query can fill it), is frozen, and adds with ``+``
so statistics computed per stratum, per day or per chunk combine into one. Means and variances are
derived on demand; variances are sample variances (divisor ``n - 1``).

The sums form of the variance, ``(sum_sq - sum**2 / n) / (n - 1)``, loses precision when the mean
is many orders of magnitude larger than the standard deviation (float64 keeps ~15 digits); metrics
are counts, amounts and rates where this does not bite, and a tiny negative result from rounding is
clamped to zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from xngin.stats.errors import StatsInputError

__all__ = ["CupedStats", "MeanStats", "RatioStats"]


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise StatsInputError(
            f"n must be a whole number of participants >= 0, got {n!r}", field="n"
        )


def _check_finite(stats: object) -> None:
    for f in fields(stats):  # type: ignore[arg-type]
        value = getattr(stats, f.name)
        if not math.isfinite(value):
            raise StatsInputError(f"{f.name} must be a finite number, got {value!r}", field=f.name)


def _sample_variance(n: int, total: float, total_sq: float) -> float:
    if n < 2:
        return math.nan
    return max(0.0, (total_sq - total * total / n) / (n - 1))


def _sample_covariance(n: int, sum_a: float, sum_b: float, sum_ab: float) -> float:
    if n < 2:
        return math.nan
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


def _as_vector(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise StatsInputError(
            f"{name} must be one-dimensional, got shape {array.shape}", field=name
        )
    if not np.all(np.isfinite(array)):
        raise StatsInputError(f"{name} holds NaN or infinite values; drop them first", field=name)
    return array


def _paired(x: ArrayLike, y: ArrayLike, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_vector(x, x_name), _as_vector(y, y_name)
    if a.shape != b.shape:
        raise StatsInputError(
            f"{x_name} and {y_name} must have one value per participant each, got lengths "
            f"{a.size} and {b.size}",
            field=y_name,
        )
    return a, b


class _Summable:
    """``+`` for sums-only dataclasses: add field by field, refuse other types."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        values = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)  # type: ignore[arg-type]
        }
        return type(self)(**values)

    @classmethod
    def empty(cls) -> Self:
        """The zero element: no participants, all sums 0 (start value for ``sum()``)."""
        return cls(**{f.name: 0 for f in fields(cls)})  # type: ignore[arg-type]

    @classmethod
    def combine(cls, parts: Iterable[Self]) -> Self:
        """Add up statistics of disjoint groups of participants (strata, chunks, days)."""
        total = cls.empty()
        for part in parts:
            total = total + part
        return total


@dataclass(frozen=True)
class MeanStats(_Summable):
    """Count, sum and sum of squares of one metric in one arm.

    Binary metrics (0/1 per participant) use the same class with ``sum_sq == sum``.

    Parameters
    ----------
    n : int
        Participants with a value, >= 0.
    sum : float
        Sum of the values.
    sum_sq : float
        Sum of the squared values, >= 0.
    """

    n: int
    sum: float
    sum_sq: float

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite(self)
        if self.sum_sq < 0:
            raise StatsInputError(f"sum_sq must be >= 0, got {self.sum_sq!r}", field="sum_sq")

    @classmethod
    def from_values(cls, values: ArrayLike) -> MeanStats:
        """Statistics of raw per-participant values (finite numbers)."""
        array = _as_vector(values, "values")
        return cls(n=int(array.size), sum=float(array.sum()), sum_sq=float(array @ array))

    @property
    def mean(self) -> float:
        """Arithmetic mean; NaN without participants."""
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (divisor n - 1); NaN for fewer than two participants."""
        return _sample_variance(self.n, self.sum, self.sum_sq)

    @property
    def std_dev(self) -> float:
        """Sample standard deviation."""
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class RatioStats(_Summable):
    """Sums for a ratio metric (numerator x over denominator y per participant) in one arm.

    Examples: revenue per order (x = revenue, y = orders), clicks per session. The arm's metric is
    ``sum_x / sum_y``, not the mean of per-participant ratios.

    Parameters
    ----------
    n : int
        Participants, >= 0.
    sum_x, sum_x_sq : float
        Sum and sum of squares of the numerator.
    sum_y, sum_y_sq : float
        Sum and sum of squares of the denominator.
    sum_xy : float
        Sum of the per-participant products x * y.
    """

    n: int
    sum_x: float
    sum_x_sq: float
    sum_y: float
    sum_y_sq: float
    sum_xy: float

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite(self)

    @classmethod
    def from_values(cls, numerator: ArrayLike, denominator: ArrayLike) -> RatioStats:
        """Statistics of raw per-participant numerator and denominator values."""
        x, y = _paired(numerator, denominator, "numerator", "denominator")
        return cls(
            n=int(x.size),
            sum_x=float(x.sum()),
            sum_x_sq=float(x @ x),
            sum_y=float(y.sum()),
            sum_y_sq=float(y @ y),
            sum_xy=float(x @ y),
        )

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n if self.n else math.nan

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.n if self.n else math.nan

    @property
    def ratio(self) -> float:
        """The arm's metric, sum_x / sum_y; NaN when the denominator sums to 0."""
        return self.sum_x / self.sum_y if self.sum_y != 0 else math.nan

    @property
    def variance_x(self) -> float:
        return _sample_variance(self.n, self.sum_x, self.sum_x_sq)

    @property
    def variance_y(self) -> float:
        return _sample_variance(self.n, self.sum_y, self.sum_y_sq)

    @property
    def covariance_xy(self) -> float:
        """Sample covariance of numerator and denominator (divisor n - 1)."""
        return _sample_covariance(self.n, self.sum_x, self.sum_y, self.sum_xy)


@dataclass(frozen=True)
class CupedStats(_Summable):
    """Sums for an outcome y with a pre-experiment covariate x (usually y's own past value).

    Parameters
    ----------
    n : int
        Participants, >= 0.
    sum_y, sum_y_sq : float
        Sum and sum of squares of the outcome.
    sum_x, sum_x_sq : float
        Sum and sum of squares of the pre-period covariate.
    sum_xy : float
        Sum of the per-participant products x * y.
    """

    n: int
    sum_y: float
    sum_y_sq: float
    sum_x: float
    sum_x_sq: float
    sum_xy: float

    def __post_init__(self) -> None:
        _check_count(self.n)
        _check_finite(self)

    @classmethod
    def from_values(cls, outcome: ArrayLike, covariate: ArrayLike) -> CupedStats:
        """Statistics of raw per-participant outcome and pre-period covariate values."""
        y, x = _paired(outcome, covariate, "outcome", "covariate")
        return cls(
            n=int(y.size),
            sum_y=float(y.sum()),
            sum_y_sq=float(y @ y),
            sum_x=float(x.sum()),
            sum_x_sq=float(x @ x),
            sum_xy=float(x @ y),
        )

    @property
    def outcome(self) -> MeanStats:
        """The outcome alone, for the unadjusted comparison."""
        return MeanStats(n=self.n, sum=self.sum_y, sum_sq=self.sum_y_sq)

    @property
    def covariate(self) -> MeanStats:
        return MeanStats(n=self.n, sum=self.sum_x, sum_sq=self.sum_x_sq)

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.n if self.n else math.nan

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n if self.n else math.nan

    @property
    def variance_y(self) -> float:
        return _sample_variance(self.n, self.sum_y, self.sum_y_sq)

    @property
    def variance_x(self) -> float:
        return _sample_variance(self.n, self.sum_x, self.sum_x_sq)

    @property
    def covariance_xy(self) -> float:
        """Sample covariance of covariate and outcome (divisor n - 1)."""
        return _sample_covariance(self.n, self.sum_x, self.sum_y, self.sum_xy)
