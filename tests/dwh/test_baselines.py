from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from xngin.dwh.baselines import MetricBaseline, metric_baselines
from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import InvalidInput

METRICS = ("visits", "score", "amount", "flag", "balance")


def reference(rows, name, audience=None):
    """Mean and sample standard deviation from exact rational arithmetic (statistics module)."""
    chosen = [r for r in rows if audience is None or audience(r)]
    values = [r[name] for r in chosen if r[name] is not None]
    values = [int(v) if isinstance(v, bool) else v for v in values]
    return (
        len(chosen),
        len(values),
        float(statistics.fmean(values)) if values else None,
        float(statistics.stdev(values)) if len(values) > 1 else None,
    )


def test_baselines_match_exact_python_statistics(warehouse):
    metrics = [warehouse.field(n) for n in METRICS]

    got = metric_baselines(warehouse.engine, warehouse.table, metrics)

    assert list(got) == list(METRICS)
    for name in METRICS:
        n, nonnull, mean, stddev = reference(warehouse.rows, name)
        b = got[name]
        assert (b.field_name, b.available_n, b.available_nonnull_n) == (name, n, nonnull)
        assert b.mean == pytest.approx(mean, rel=1e-12), name
        assert b.stddev == pytest.approx(stddev, rel=1e-6), name


def test_baseline_of_a_large_mean_with_a_tiny_spread_keeps_its_precision(warehouse):
    # balance ~ 1e9 + N(0, 0.01): the one-pass sum-of-squares formula returns noise here.
    values = np.array([r["balance"] for r in warehouse.rows])
    naive = (np.sum(values**2) - np.sum(values) ** 2 / len(values)) / (len(values) - 1)
    exact = statistics.stdev(values.tolist())
    assert not math.isclose(math.sqrt(abs(naive)), exact, rel_tol=0.1)

    got = metric_baselines(warehouse.engine, warehouse.table, [warehouse.field("balance")])

    assert got["balance"].stddev == pytest.approx(exact, rel=1e-5)


def test_baselines_of_a_filtered_audience(warehouse):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("category", Relation.INCLUDES, ["alpha", None])],
        allowed={"category": DataType.STRING},
    )
    metrics = [warehouse.field(n) for n in ("score", "flag")]

    got = metric_baselines(warehouse.engine, warehouse.table, metrics, filters=where)

    for name in ("score", "flag"):
        n, nonnull, mean, stddev = reference(
            warehouse.rows, name, lambda r: r["category"] in ("alpha", None)
        )
        assert got[name].available_n == n
        assert got[name].available_nonnull_n == nonnull
        assert got[name].mean == pytest.approx(mean, rel=1e-12)
        assert got[name].stddev == pytest.approx(stddev, rel=1e-9)


def test_baselines_of_tiny_audiences_report_what_is_defined(warehouse):
    allowed = {"id": DataType.INTEGER}
    empty = compile_filters(
        warehouse.table, [AudienceFilter("id", Relation.INCLUDES, [-1])], allowed=allowed
    )
    one = compile_filters(
        warehouse.table, [AudienceFilter("id", Relation.INCLUDES, [1])], allowed=allowed
    )
    visits = warehouse.field("visits")

    none = metric_baselines(warehouse.engine, warehouse.table, [visits], filters=empty)
    single = metric_baselines(warehouse.engine, warehouse.table, [visits], filters=one)

    assert none["visits"] == MetricBaseline("visits", 0, 0, None, None)
    assert single["visits"] == MetricBaseline(
        "visits", 1, 1, float(warehouse.rows[0]["visits"]), None
    )


def test_constant_metric_has_zero_spread(warehouse):
    allowed = {"id": DataType.INTEGER}
    # Two rows with the same visits value would do; id 1 twice is not possible, so use one
    # value repeated via the household of the first rows that share a visits count.
    by_visits = {}
    for r in warehouse.rows:
        by_visits.setdefault(r["visits"], []).append(r["id"])
    ids = next(v for v in by_visits.values() if len(v) >= 3)
    where = compile_filters(
        warehouse.table, [AudienceFilter("id", Relation.INCLUDES, ids)], allowed=allowed
    )

    got = metric_baselines(
        warehouse.engine, warehouse.table, [warehouse.field("visits")], filters=where
    )

    assert got["visits"].stddev == 0.0
    assert got["visits"].available_nonnull_n == len(ids)


def test_non_numeric_metrics_are_refused(table):
    with pytest.raises(InvalidInput) as info:
        metric_baselines(None, table, [ColumnInfo("category", DataType.STRING)])
    assert info.value.field == "metrics"
    assert "category" in info.value.message
