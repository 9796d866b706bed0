"""Sufficient statistics: derived moments match numpy on the raw values; ``+`` combines groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xngin.stats.errors import StatsInputError
from xngin.stats.sufficient import CupedStats, MeanStats, RatioStats


def test_mean_stats_mean_and_sample_variance_match_numpy() -> None:
    values = np.random.default_rng(1).lognormal(1.0, 0.7, size=1234)
    stats = MeanStats.from_values(values)
    assert stats.n == 1234
    assert stats.mean == pytest.approx(values.mean(), rel=1e-12)
    assert stats.variance == pytest.approx(values.var(ddof=1), rel=1e-10)
    assert stats.std_dev == pytest.approx(values.std(ddof=1), rel=1e-10)


def test_ratio_stats_moments_match_numpy() -> None:
    rng = np.random.default_rng(2)
    y = rng.poisson(3.0, size=800).astype(float) + 1
    x = y * rng.gamma(2.0, 5.0, size=800)
    stats = RatioStats.from_values(x, y)
    assert stats.ratio == pytest.approx(x.sum() / y.sum(), rel=1e-12)
    assert stats.variance_x == pytest.approx(x.var(ddof=1), rel=1e-10)
    assert stats.variance_y == pytest.approx(y.var(ddof=1), rel=1e-10)
    assert stats.covariance_xy == pytest.approx(np.cov(x, y, ddof=1)[0, 1], rel=1e-10)


def test_cuped_stats_moments_match_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(10, 2, size=500)
    y = 0.5 * x + rng.normal(0, 1, size=500)
    stats = CupedStats.from_values(y, x)
    assert stats.mean_y == pytest.approx(y.mean(), rel=1e-12)
    assert stats.mean_x == pytest.approx(x.mean(), rel=1e-12)
    assert stats.variance_y == pytest.approx(y.var(ddof=1), rel=1e-10)
    assert stats.variance_x == pytest.approx(x.var(ddof=1), rel=1e-10)
    assert stats.covariance_xy == pytest.approx(np.cov(x, y, ddof=1)[0, 1], rel=1e-10)
    assert stats.outcome == MeanStats.from_values(y)
    assert stats.covariate == MeanStats.from_values(x)


def test_adding_strata_gives_the_statistics_of_all_participants() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(5, 1, size=300)
    y = rng.normal(2, 1, size=300)
    parts = np.split(np.arange(300), [50, 170])
    for cls, args in (
        (MeanStats, (y,)),
        (RatioStats, (x, y)),
        (CupedStats, (y, x)),
    ):
        whole = cls.from_values(*args)  # type: ignore[attr-defined]
        pieces = [cls.from_values(*(a[idx] for a in args)) for idx in parts]  # type: ignore[attr-defined]
        added = pieces[0] + pieces[1] + pieces[2]
        for name, value in vars(whole).items():
            assert getattr(added, name) == pytest.approx(value, rel=1e-12), (cls, name)
        combined = cls.combine(pieces)  # type: ignore[attr-defined]
        assert combined == added
        assert sum(pieces, cls.empty()) == added  # type: ignore[attr-defined]


def test_adding_different_kinds_of_statistics_is_refused() -> None:
    with pytest.raises(TypeError):
        _ = MeanStats(2, 1.0, 1.0) + RatioStats(2, 1.0, 1.0, 1.0, 1.0, 1.0)  # type: ignore[operator]


def test_statistics_are_frozen() -> None:
    stats = MeanStats(3, 3.0, 5.0)
    with pytest.raises(AttributeError):
        stats.n = 4  # type: ignore[misc]


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_count_must_be_a_whole_number_of_participants(n: object) -> None:
    with pytest.raises(StatsInputError) as raised:
        MeanStats(n, 1.0, 1.0)  # type: ignore[arg-type]
    assert raised.value.field == "n"


def test_non_finite_sums_are_refused_with_the_field_named() -> None:
    with pytest.raises(StatsInputError) as raised:
        RatioStats(3, 1.0, 1.0, math.nan, 1.0, 1.0)
    assert raised.value.field == "sum_y"
    with pytest.raises(StatsInputError) as raised:
        MeanStats(3, 1.0, -1.0)
    assert raised.value.field == "sum_sq"


def test_mismatched_raw_arrays_are_refused() -> None:
    with pytest.raises(StatsInputError) as raised:
        CupedStats.from_values([1.0, 2.0], [1.0])
    assert raised.value.field == "covariate"
    with pytest.raises(StatsInputError):
        MeanStats.from_values([1.0, math.inf])


def test_variance_is_undefined_below_two_participants_and_never_negative() -> None:
    assert math.isnan(MeanStats(1, 4.0, 16.0).variance)
    assert math.isnan(MeanStats(0, 0.0, 0.0).mean)
    # Rounding in a warehouse's SUM can leave sum_sq a hair below sum**2 / n.
    assert MeanStats(3, 3.0, 3.0 - 1e-15).variance == 0.0
