"""SQL that turns events into per-participant metric values and per-arm sums, inside the store.

One builder serves both backends; a :class:`Dialect` supplies the few pieces that differ
(parameter style, join keyword, ``FINAL``, how event times and "no experiment" are stored, where
the current assignments live). The SQL is written for the narrower of the two, ClickHouse 18.16:
no ``WITH`` subqueries, joins only ``USING`` a shared column with distinct column names on each
side, and the right side of a join (held in memory there) kept small by filtering it to the
experiment's participants first.

Every value reaches the database as a parameter. Identifiers and SQL fragments come only from
this module and the dialects, never from callers, hence the ``noqa: S608`` on the f-strings.

How a participant's value is found (see :class:`~xngin.events.model.EventMetric`):

1. anchor = first exposure to the experiment, else the assignment time;
2. their outcome events of the metric's name (with no experiment id or this one) whose time falls
   in the window ``[anchor, anchor + window)`` (or ``[anchor - window, anchor)`` for pre-period);
3. aggregated by sum / count / binary (0 without events) or mean (no value without events).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xngin.events.model import Aggregation, EventMetric


class Dialect(ABC):
    """The pieces of SQL that differ between event-store backends."""

    left_join: str
    events_table: str
    event_time_us: str
    no_experiment: str

    @abstractmethod
    def param(self, name: str) -> str:
        """The placeholder for the parameter ``name``."""

    @abstractmethod
    def current_assignments(self) -> str:
        """A SELECT of ``participant_id, arm_id, assigned_at_us`` for the experiment given as
        the ``experiment_id`` parameter."""


@dataclass(frozen=True)
class MetricColumn:
    """One per-participant value to compute; ``event_name`` None means any outcome."""

    event_name: str | None
    aggregation: Aggregation
    window_us: int | None
    pre_period: bool

    @classmethod
    def of(cls, metric: EventMetric) -> MetricColumn:
        return cls(metric.event_name, metric.aggregation, metric.window_us, metric.pre_period)


def _in_window(dialect: Dialect, column: MetricColumn, index: int, params: dict[str, Any]) -> str:
    conditions = ["event_matched = 1"]
    if column.event_name is not None:
        params[f"name_{index}"] = column.event_name
        conditions.append(f"event_name = {dialect.param(f'name_{index}')}")
    window = None
    if column.window_us is not None:
        params[f"window_{index}"] = column.window_us
        window = dialect.param(f"window_{index}")
    if column.pre_period:
        conditions.append("event_us < anchor_us")
        if window is not None:
            conditions.append(f"event_us >= anchor_us - {window}")
    else:
        conditions.append("event_us >= anchor_us")
        if window is not None:
            conditions.append(f"event_us < anchor_us + {window}")
    return " AND ".join(conditions)


def _aggregate(column: MetricColumn, condition: str) -> str:
    match column.aggregation:
        case "count":
            return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"
        case "binary":
            return f"max(CASE WHEN {condition} THEN 1 ELSE 0 END)"
        case "sum":
            # Events without a value add nothing; a participant without events sums to 0.
            return f"coalesce(sum(CASE WHEN {condition} THEN event_value ELSE 0 END), 0)"
        case "mean":
            # avg ignores NULLs and is NULL over nothing: no events, no value.
            return f"avg(CASE WHEN {condition} THEN event_value ELSE NULL END)"
    raise AssertionError(column.aggregation)  # pragma: no cover - Literal is exhaustive


def participant_values(
    dialect: Dialect, *, experiment_id: str, columns: Sequence[MetricColumn]
) -> tuple[str, dict[str, Any]]:
    """SQL for one row per assigned participant: ``participant_id, arm_id, exposed, value_0, ...``.

    Parameters
    ----------
    dialect
        The backend's SQL pieces.
    experiment_id
        The experiment whose current assignments define the participants.
    columns
        The values to compute per participant, in output order (``value_0``, ``value_1``, ...).

    Returns
    -------
    The SQL text and its parameters.
    """
    p = dialect.param
    params: dict[str, Any] = {"experiment_id": experiment_id}
    assignments = dialect.current_assignments()
    names = sorted({c.event_name for c in columns if c.event_name is not None})
    if any(c.event_name is None for c in columns):
        name_filter = ""  # some value counts any outcome
    else:
        for i, name in enumerate(names):
            params[f"event_name_{i}"] = name
        name_filter = "AND name IN (" + ", ".join(p(f"event_name_{i}") for i in range(len(names)))
        name_filter += ")"
    values = ",\n".join(
        f"{_aggregate(c, _in_window(dialect, c, i, params))} AS value_{i}"
        for i, c in enumerate(columns)
    )
    sql = f"""
        SELECT participant_id, arm_id, exposed,
            {values}
        FROM (
            SELECT participant_id, arm_id,
                coalesce(exposure_flag, 0) AS exposed,
                CASE WHEN exposure_flag = 1 THEN first_exposure_us ELSE assigned_at_us END
                    AS anchor_us
            FROM ({assignments}) AS assigned
            {dialect.left_join} (
                SELECT participant_id, min({dialect.event_time_us}) AS first_exposure_us,
                    1 AS exposure_flag
                FROM {dialect.events_table}
                WHERE type = 'exposure' AND experiment_id = {p("experiment_id")}
                GROUP BY participant_id
            ) AS exposures USING (participant_id)
        ) AS anchored
        {dialect.left_join} (
            SELECT participant_id, {dialect.event_time_us} AS event_us, value AS event_value,
                name AS event_name, 1 AS event_matched
            FROM {dialect.events_table}
            WHERE type = 'outcome' {name_filter}
                AND ({dialect.no_experiment} OR experiment_id = {p("experiment_id")})
                AND participant_id IN (SELECT participant_id FROM ({assignments}) AS members)
        ) AS outcomes USING (participant_id)
        GROUP BY participant_id, arm_id, exposed
    """  # noqa: S608
    return sql, params


def arm_sums(dialect: Dialect, *, experiment_id: str, metric: EventMetric) -> tuple[str, Any]:
    """SQL for ``arm_id, n, sum, sum_sq`` of one metric, one row per arm."""
    inner, params = participant_values(
        dialect, experiment_id=experiment_id, columns=[MetricColumn.of(metric)]
    )
    sql = f"""
        SELECT arm_id, count(value_0), coalesce(sum(value_0), 0),
            coalesce(sum(value_0 * value_0), 0)
        FROM ({inner}) AS per_participant
        GROUP BY arm_id ORDER BY arm_id
    """  # noqa: S608
    return sql, params


def arm_pair_sums(
    dialect: Dialect,
    *,
    experiment_id: str,
    x: MetricColumn,
    y: MetricColumn,
    x_missing_is_zero: bool,
) -> tuple[str, Any]:
    """SQL for ``arm_id, n, sum_x, sum_x_sq, sum_y, sum_y_sq, sum_xy``, one row per arm.

    Participants count when both values exist; with ``x_missing_is_zero`` a missing ``x`` (a
    pre-period mean over no events) is taken as 0 instead, which keeps CUPED's ``n`` equal to
    the outcome's ``n`` (any covariate unaffected by treatment keeps the estimate unbiased).
    """
    inner, params = participant_values(dialect, experiment_id=experiment_id, columns=[x, y])
    x_value = "coalesce(value_0, 0)" if x_missing_is_zero else "value_0"
    sql = f"""
        SELECT arm_id, sum(complete), sum(complete * x), sum(complete * x * x),
            sum(complete * y), sum(complete * y * y), sum(complete * x * y)
        FROM (
            SELECT arm_id,
                CASE WHEN raw_x IS NOT NULL AND raw_y IS NOT NULL THEN 1 ELSE 0 END AS complete,
                coalesce(raw_x, 0) AS x, coalesce(raw_y, 0) AS y
            FROM (
                SELECT arm_id, {x_value} AS raw_x, value_1 AS raw_y
                FROM ({inner}) AS per_participant
            ) AS pairs
        ) AS flagged
        GROUP BY arm_id ORDER BY arm_id
    """  # noqa: S608
    return sql, params


def participant_rows(
    dialect: Dialect, *, experiment_id: str, metric: EventMetric, covariate: EventMetric | None
) -> tuple[str, Any]:
    """SQL for ``participant_id, arm_id, value[, covariate]`` ordered by participant; participants
    without a value (mean over no events) are left out, a missing covariate is 0."""
    columns = [MetricColumn.of(metric)]
    if covariate is not None:
        columns.append(MetricColumn.of(covariate))
    inner, params = participant_values(dialect, experiment_id=experiment_id, columns=columns)
    extra = ", coalesce(value_1, 0)" if covariate is not None else ""
    sql = f"""
        SELECT participant_id, arm_id, value_0{extra}
        FROM ({inner}) AS per_participant
        WHERE value_0 IS NOT NULL
        ORDER BY participant_id
    """  # noqa: S608
    return sql, params


def arm_participation(
    dialect: Dialect, *, experiment_id: str, event_name: str | None
) -> tuple[str, Any]:
    """SQL for ``arm_id, assigned, exposed, with_outcome``, one row per arm."""
    column = MetricColumn(event_name, "binary", window_us=None, pre_period=False)
    inner, params = participant_values(dialect, experiment_id=experiment_id, columns=[column])
    sql = f"""
        SELECT arm_id, count(*), sum(exposed), sum(value_0)
        FROM ({inner}) AS per_participant
        GROUP BY arm_id ORDER BY arm_id
    """  # noqa: S608
    return sql, params
