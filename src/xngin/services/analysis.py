"""``GET /v1/experiments/{id}/analysis``: per metric and arm, effect, interval and p-values.

Where the numbers come from (only aggregates travel, except for regressions, which stream):

* **Event metrics** (event and ratio sources): per-arm sufficient statistics computed inside the
  event store, one query per metric (:func:`xngin.services.events.event_metric_stats`), against
  the store's mirror of the assignments. When a query shows the mirror's arm counts differ from
  the app database's (not mirrored yet, or online assignments it missed), the experiment is
  re-mirrored once and the event metrics read again.
* **Sheet metrics** (columns of the participant table): the warehouse holds the values, the app
  database the assignments, and no join between the two systems exists. The assignments are
  streamed from the app database in chunks of 5,000; each chunk's values are fetched from the
  warehouse by ID (``WHERE id IN (...)``, through the audience filter compiler so IDs are typed
  for every dialect) and summed per arm and stratum in NumPy. One pass serves every sheet metric;
  memory holds one chunk. A temporary table of IDs would let the warehouse do the sums, but needs
  write rights (the demo's DuckDB is opened read-only) and differs per dialect.
* **Regression** (``method=regression``): OLS of the metric on arms with strata fixed effects and
  HC1 errors, plus the pre-period covariate for CUPED event metrics. Sheet metrics need only
  per-(arm, stratum) sums from the same pass; event metrics stream per-participant rows from the
  store in chunks, with their strata looked up in the app database chunk by chunk.

Statistics come from :func:`xngin.stats.analysis.analyze_experiment`: the sample-ratio check
(assigned counts from the app database against the arm weights), the comparisons, the p-values
adjusted over the family of every metric x arm comparison (Holm by default), and always-valid
p-values once the experiment has started. A metric that cannot be computed (unknown name,
warehouse column gone, store down) is reported with an error code; the others still are.

Guardrail metrics are judged on their interval; a breach is listed in ``guardrails``. With
``auto_stop`` a running or paused experiment is stopped through the lifecycle's stop action, but
only when the always-valid interval also lies beyond the tolerance, so watching the analysis
every day cannot stop an experiment by chance more often than alpha.

**Looks.** Once an experiment has started, every comparison's sequential result is stored as a
look (``store.analysis_looks``) and the latest look is passed back as ``previous``, so the
always-valid p-value never rises and the confidence sequence is the intersection over looks,
whichever request, process or replica computes the next analysis. The GET therefore writes, in
the request's transaction; to keep repeated GETs (a refreshed results page) cheap and the
history readable, a look is recorded only when the last one is at least ``LOOK_INTERVAL``
old. Skipping looks costs nothing statistically: the guarantee holds at every look, taken or
not, and a skipped look's result is still nested in the stored one.
:func:`xngin.services.analysis_looks.analysis_history` returns the stored looks for the
sequential view over time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.dwh.audience import values_by_id
from xngin.dwh.engines import connect
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import XnginError
from xngin.services.access import Principal
from xngin.services.analysis_looks import look_due, looks_of, previous_from_looks
from xngin.services.analysis_plan import (
    AnalysisMetric,
    EventSource,
    RatioSource,
    SheetSource,
    analysis_plan,
)
from xngin.services.catalog import open_participant_type
from xngin.services.design import stats_input_errors
from xngin.services.events import (
    StratumCodes,
    event_metric_regression,
    event_metric_stats,
    mirror_assignments,
)
from xngin.services.lifecycle import load_experiment, perform_action
from xngin.services.runtime import Runtime
from xngin.stats.analysis import (
    ArmAnalysis,
    ArmSpec,
    GuardrailSpec,
    MetricInput,
    analyze_experiment,
)
from xngin.stats.errors import StatsInputError
from xngin.stats.regression import RegressionResult, arm_regression_from_cells
from xngin.stats.sufficient import MeanStats
from xngin.store import analysis_looks as look_repo
from xngin.store.models import Assignment, Experiment

log = logging.getLogger(__name__)

Correction = Literal["holm", "bh", "bonferroni", "none"]
Method = Literal["auto", "regression"]

#: States in which the experiment has been watched while running: always-valid p-values apply.
STARTED_STATES = frozenset({"running", "paused", "completed", "stopped"})
WAREHOUSE_CHUNK = 5000
#: A new look is stored only when the latest is at least this old (see the module docstring).


@dataclass
class _Outcome:
    """One metric's statistics input, or why it has none, and who reached it."""

    metric: AnalysisMetric
    input: MetricInput | None = None
    error: tuple[str, str] | None = None
    with_outcome: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)


def _guardrail(metric: AnalysisMetric) -> GuardrailSpec | None:
    rule = metric.guardrail
    if rule is None:
        return None
    return GuardrailSpec(
        bad_direction=rule.direction, threshold=rule.threshold, relative=rule.relative
    )


def _failure(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, XnginError):
        return ("unavailable" if exc.status == 503 else exc.code), exc.message
    if isinstance(exc, StatsInputError):
        return "invalid_metric", exc.message
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "query_failed", text


# App database ---------------------------------------------------------------------------------


def assigned_counts(session: Session, experiment_id: str) -> dict[str, int]:
    """Participants assigned per arm in the app database (arms without any are left out)."""
    table = Assignment.__table__.c
    rows = session.execute(
        sa.select(table.arm_id, sa.func.count())
        .where(table.experiment_id == experiment_id)
        .group_by(table.arm_id)
    )
    return {str(arm): int(n) for arm, n in rows}


# Event metrics ----------------------------------------------------------------------------------


def _event_outcomes(
    runtime: Runtime,
    session: Session,
    experiment: Experiment,
    metrics: list[AnalysisMetric],
    *,
    assigned: dict[str, int],
    method: Method,
    alpha: float,
) -> list[_Outcome]:
    try:
        store = runtime.event_store  # opened (and migrated) on first use
    except XnginError as exc:
        return [_Outcome(m, error=_failure(exc)) for m in metrics]
    expected = {a: n for a, n in assigned.items() if n}
    for attempt in (1, 2):
        outcomes, stale = [], False
        for metric in metrics:
            outcome = _Outcome(metric)
            counts: dict[str, int] | None = None
            try:
                if method == "regression" and isinstance(metric.source, EventSource):
                    fitted = event_metric_regression(
                        store,
                        session,
                        experiment_id=experiment.id,
                        arm_ids=[a.id for a in experiment.arms],
                        metric=metric.source.metric,
                        cuped=metric.cuped,
                        stratified=bool((experiment.design or {}).get("strata")),
                        alpha=alpha,
                    )
                    effects = _effects(experiment, fitted.result)
                    outcome.input = _input(metric, dict(fitted.arm_stats), effects)
                    counts = {a: s.n for a, s in fitted.arm_stats.items()}
                    if metric.source.metric.aggregation == "mean":
                        # A mean leaves out participants without events: who has one, not who
                        # is assigned, so no mirror check.
                        outcome.with_outcome, counts = counts, None
                else:
                    assert isinstance(metric.source, EventSource | RatioSource)
                    stats = event_metric_stats(
                        store, experiment.id, metric.source, cuped=metric.cuped
                    )
                    outcome.input = _input(metric, stats.arm_stats)
                    outcome.with_outcome = stats.with_outcome
                    counts = stats.store_assigned
                    if method == "regression":
                        outcome.notes.append("regression does not apply to ratios: delta method")
            except Exception as exc:  # one metric's failure must not sink the others
                if not isinstance(exc, XnginError | StatsInputError):
                    log.exception("event metric %r of %s failed", metric.name, experiment.id)
                outcome.error, counts = _failure(exc), None
            outcomes.append(outcome)
            if counts is not None:
                online = experiment.type == "online"
                stale = stale or mirror_is_stale(counts, expected, online=online)
            elif outcome.input is not None and not outcome.input.arm_stats:
                stale = True  # nothing at all in the store: not mirrored yet
        if not (stale and attempt == 1 and expected):
            return outcomes
        log.info("event store mirror of %s is stale; mirroring it again", experiment.id)
        try:
            mirror_assignments(runtime, experiment.id, connection=session.connection())
        except XnginError as exc:
            return [
                _Outcome(o.metric, error=_failure(exc)) if o.error is None else o for o in outcomes
            ]
    raise AssertionError("unreachable")  # pragma: no cover


def mirror_is_stale(
    store_counts: dict[str, int], app_counts: dict[str, int], *, online: bool
) -> bool:
    """Whether the event store's mirror of the assignments differs from the app database's.

    A preassigned experiment's assignment does not change after commit: any difference in the
    per-arm counts means the mirror is stale. An online experiment keeps assigning: the app
    database is counted first, so assignments arriving meanwhile can only make the store's
    counts larger, and each reaches the store a moment after the app database. A shortfall of
    up to 10 participants or 0.1% per arm is that moment; more, or a missing arm, is stale.
    """
    if not online:
        return {a: n for a, n in store_counts.items() if n} != {
            a: n for a, n in app_counts.items() if n
        }
    for arm, expected in app_counts.items():
        if expected and expected - store_counts.get(arm, 0) > max(10, expected // 1000):
            return True
    return False


def _input(
    metric: AnalysisMetric,
    arm_stats: dict[str, Any],
    effects: dict[str, Any] | None = None,
) -> MetricInput:
    return MetricInput(
        metric_name=metric.name,
        kind=metric.kind,
        arm_stats=arm_stats,
        effects=effects,
        guardrail=_guardrail(metric),
    )


def _effects(experiment: Experiment, result: RegressionResult) -> dict[str, Any]:
    treatments = [a.id for a in experiment.arms][1:]
    return dict(zip(treatments, result.effects, strict=True))


# Sheet metrics ----------------------------------------------------------------------------------


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _sheet_outcomes(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    experiment: Experiment,
    metrics: list[AnalysisMetric],
    *,
    method: Method,
    alpha: float,
) -> list[_Outcome]:
    outcomes = [_Outcome(m) for m in metrics]
    try:
        cells = _sheet_cells(runtime, session, principal, experiment, metrics)
    except Exception as exc:  # the warehouse failing must not sink the event metrics
        if not isinstance(exc, XnginError):
            log.exception("sheet metrics of %s failed", experiment.id)
        failure = _failure(exc)
        for outcome in outcomes:
            outcome.error = failure
        return outcomes
    arm_ids = [a.id for a in experiment.arms]
    n_arms = len(arm_ids)
    for outcome, sums in zip(outcomes, cells, strict=True):
        per_arm = sums.reshape(-1, n_arms, 3).sum(axis=0)
        arm_stats = {
            arm: MeanStats(int(per_arm[i, 0]), float(per_arm[i, 1]), float(per_arm[i, 2]))
            for i, arm in enumerate(arm_ids)
            if per_arm[i, 0]
        }
        outcome.with_outcome = {arm: s.n for arm, s in arm_stats.items()}
        effects = None
        if method == "regression":
            cell_stats = {
                (cell % n_arms, cell // n_arms): MeanStats(int(c[0]), float(c[1]), float(c[2]))
                for cell, c in enumerate(sums)
                if c[0]
            }
            try:
                result = arm_regression_from_cells(
                    cell_stats, n_arms=n_arms, baseline=0, alpha=alpha
                )
            except StatsInputError as exc:
                outcome.error = _failure(exc)
                continue
            effects = _effects(experiment, result)
        outcome.input = _input(outcome.metric, arm_stats, effects)
    return outcomes


def _sheet_cells(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    experiment: Experiment,
    metrics: list[AnalysisMetric],
) -> list[np.ndarray]:
    """Per metric, an array ``(cells, 3)`` of count, sum and sum of squares per (stratum, arm)
    cell, cell = stratum * n_arms + arm, from one streamed pass over the assignments."""
    pt = open_participant_type(runtime, session, principal, experiment.participant_type.name)
    id_column = pt.schema.column(pt.unique_id_field) or ColumnInfo(
        pt.unique_id_field, DataType.STRING
    )
    sources = [m.source for m in metrics]
    assert all(isinstance(s, SheetSource) for s in sources)
    fields = [ColumnInfo(s.field_name, s.data_type) for s in sources if isinstance(s, SheetSource)]
    arm_index = {a.id: i for i, a in enumerate(experiment.arms)}
    n_arms = len(arm_index)
    codes = StratumCodes()
    sums = [np.zeros((0, 3)) for _ in metrics]
    from xngin.store.assignments import iter_assignment_chunks

    with connect(pt.engine) as warehouse:
        for chunk in iter_assignment_chunks(
            session.connection(), experiment_id=experiment.id, chunk_size=WAREHOUSE_CHUNK
        ):
            rows = values_by_id(
                warehouse,
                pt.table,
                id_field=id_column,
                fields=fields,
                ids=[row[0] for row in chunk],
            )
            found = {pid: [_as_float(v) for v in values] for pid, values in rows.items()}
            kept = [r for r in chunk if r[1] in arm_index]
            arms = np.array([arm_index[r[1]] for r in kept], dtype=np.intp)
            cell = np.array([codes(r[3]) for r in kept], dtype=np.intp) * n_arms + arms
            size = len(codes.codes) * n_arms
            missing = [math.nan] * len(fields)
            values = np.array([found.get(r[0], missing) for r in kept], dtype=float).reshape(
                len(kept), len(fields)
            )
            for j in range(len(fields)):
                if sums[j].shape[0] < size:
                    sums[j] = np.vstack([sums[j], np.zeros((size - sums[j].shape[0], 3))])
                x = values[:, j]
                has = ~np.isnan(x)
                x = np.where(has, x, 0.0)
                sums[j][:, 0] += np.bincount(cell, weights=has.astype(float), minlength=size)
                sums[j][:, 1] += np.bincount(cell, weights=x, minlength=size)
                sums[j][:, 2] += np.bincount(cell, weights=x * x, minlength=size)
    return [s if s.size else np.zeros((n_arms, 3)) for s in sums]


# The report -------------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _arm_json(arm: ArmAnalysis, assigned: int) -> dict[str, Any]:
    sequential = arm.sequential
    guardrail = arm.guardrail
    return {
        "arm_id": arm.arm_id,
        "arm_name": arm.arm_name,
        "is_baseline": arm.is_baseline,
        "assigned": assigned,
        "n": arm.n,
        "mean": _number(arm.mean),
        "std_error": _number(arm.std_error),
        "effect": _number(arm.effect),
        "effect_std_error": _number(arm.effect_std_error),
        "effect_relative": _number(arm.effect_relative),
        "ci_lower": _number(arm.ci_lower),
        "ci_upper": _number(arm.ci_upper),
        "ci_lower_relative": _number(arm.ci_lower_relative),
        "ci_upper_relative": _number(arm.ci_upper_relative),
        "p_value": _number(arm.p_value),
        "p_value_adjusted": _number(arm.p_value_adjusted),
        "always_valid_p_value": _number(arm.always_valid_p_value),
        "always_valid_ci_lower": _number(sequential.ci_lower) if sequential else None,
        "always_valid_ci_upper": _number(sequential.ci_upper) if sequential else None,
        "guardrail": None
        if guardrail is None
        else {
            "status": guardrail.status,
            "significantly_worse": guardrail.significantly_worse,
            "message": guardrail.message,
        },
        "error_code": arm.error_code,
        "error_message": arm.error_message,
        "notes": list(arm.notes),
    }


def _participation(
    experiment: Experiment, assigned: dict[str, int], reached: dict[str, int] | None
) -> list[dict[str, Any]] | None:
    if reached is None:
        return None
    rows = []
    for arm in experiment.arms:
        n_assigned = assigned.get(arm.id, 0)
        with_outcome = min(reached.get(arm.id, 0), n_assigned)
        rows.append(
            {
                "arm_id": arm.id,
                "assigned": n_assigned,
                "with_outcome": with_outcome,
                "without_outcome": n_assigned - with_outcome,
            }
        )
    return rows


def _failed_metric_json(
    outcome: _Outcome, experiment: Experiment, assigned: dict[str, int]
) -> dict[str, Any]:
    assert outcome.error is not None
    code, message = outcome.error
    return {
        "metric_name": outcome.metric.name,
        "role": outcome.metric.role,
        "kind": outcome.metric.kind,
        "source": _source_name(outcome.metric),
        "method": None,
        "variance_reduction": None,
        "error": {"code": code, "message": message},
        "participation": None,
        "notes": outcome.notes,
        "arms": [
            {
                "arm_id": arm.id,
                "arm_name": arm.name,
                "is_baseline": i == 0,
                "assigned": assigned.get(arm.id, 0),
                "n": 0,
                "error_code": code,
                "error_message": message,
            }
            for i, arm in enumerate(experiment.arms)
        ],
    }


def _source_name(metric: AnalysisMetric) -> str | None:
    if isinstance(metric.source, EventSource):
        return "event"
    if isinstance(metric.source, RatioSource):
        return "ratio"
    if isinstance(metric.source, SheetSource):
        return "sheet"
    return None


def _auto_stop_reason(
    metric: AnalysisMetric, arm: ArmAnalysis, baseline_mean: float | None
) -> str | None:
    """Why a guardrail breach stops the experiment, or None when it must not."""
    rule = metric.guardrail
    if rule is None or not rule.auto_stop or arm.guardrail is None:
        return None
    if not arm.guardrail.significantly_worse or arm.sequential is None:
        return None
    threshold = rule.threshold
    if rule.relative:
        if baseline_mean is None:
            return None
        threshold *= abs(baseline_mean)
    lower, upper = arm.sequential.ci_lower, arm.sequential.ci_upper
    beyond = lower > threshold if rule.direction == "increase" else upper < -threshold
    if not beyond:
        return None
    return (
        f"guardrail {metric.name!r}: arm {arm.arm_name!r} is worse beyond the tolerated "
        f"{rule.direction} of {rule.threshold:g}{' (relative)' if rule.relative else ''}, by its "
        f"always-valid interval {lower:.4g} to {upper:.4g}"
    )


def analyze(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    experiment_id: str,
    correction: Correction = "holm",
    method: Method = "auto",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Analyze an experiment on its analysis metrics (see the module docstring).

    Parameters
    ----------
    runtime, session, principal
        The process runtime, the request's transaction (written only by an auto-stop) and the
        caller.
    experiment_id : str
        The caller's experiment (404 otherwise), in any state; before assignment every metric
        reports ``no_data``.
    correction : {"holm", "bh", "bonferroni", "none"}
        Adjustment over every metric x arm comparison for ``p_value_adjusted``.
    method : {"auto", "regression"}
        ``auto``: Welch, proportion, delta or CUPED from per-arm sums. ``regression``: OLS with
        HC1 errors and strata fixed effects (ratios stay on the delta method).
    now : datetime, optional
        ``computed_at`` (default: the clock).

    Returns
    -------
    dict
        JSON values shaped as API.md's analysis, with ``srm``, ``guardrails`` and per metric
        ``participation`` (assigned participants with and without an outcome).
    """
    experiment = load_experiment(session, principal, experiment_id)
    computed_at = now or datetime.now(UTC)
    started = experiment.state in STARTED_STATES
    latest = look_repo.latest_looks(session, experiment.id) if started else {}
    design = experiment.design or {}
    alpha = float(design.get("alpha", 0.05))
    own_arms = {a.id for a in experiment.arms}
    assigned = {a: n for a, n in assigned_counts(session, experiment.id).items() if a in own_arms}
    plan = analysis_plan(session, principal, experiment)
    by_name: dict[int, _Outcome] = {}
    event_metrics = [
        (i, m) for i, m in enumerate(plan) if isinstance(m.source, EventSource | RatioSource)
    ]
    sheet_metrics = [(i, m) for i, m in enumerate(plan) if isinstance(m.source, SheetSource)]
    for i, m in enumerate(plan):
        if m.source is None:
            by_name[i] = _Outcome(m, error=m.error)
    if event_metrics:
        done = _event_outcomes(
            runtime, session, experiment, [m for _, m in event_metrics],
            assigned=assigned, method=method, alpha=alpha,
        )  # fmt: skip
        by_name.update(zip([i for i, _ in event_metrics], done, strict=True))
    if sheet_metrics:
        done = _sheet_outcomes(
            runtime, session, principal, experiment, [m for _, m in sheet_metrics],
            method=method, alpha=alpha,
        )  # fmt: skip
        by_name.update(zip([i for i, _ in sheet_metrics], done, strict=True))
    outcomes = [by_name[i] for i in range(len(plan))]
    arms = [ArmSpec(a.id, a.name, a.weight) for a in experiment.arms]
    with stats_input_errors():
        result = analyze_experiment(
            arms=arms,
            assigned_counts=assigned,
            metrics=[o.input for o in outcomes if o.input is not None],
            alpha=alpha,
            correction=correction,
            always_valid=started,
            previous=previous_from_looks(latest),
        )
    analyzed = iter(result.metrics)
    metrics_json: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    stop_reason: str | None = None
    for outcome in outcomes:
        if outcome.input is None:
            metrics_json.append(_failed_metric_json(outcome, experiment, assigned))
            continue
        metric_result = next(analyzed)
        baseline = metric_result.arms[0]
        for arm in metric_result.arms:
            if arm.guardrail is not None and arm.guardrail.significantly_worse:
                breaches.append(
                    {"metric_name": outcome.metric.name, "arm_id": arm.arm_id,
                     "arm_name": arm.arm_name, "message": arm.guardrail.message}
                )  # fmt: skip
            stop_reason = stop_reason or _auto_stop_reason(outcome.metric, arm, baseline.mean)
        metrics_json.append(
            {
                "metric_name": outcome.metric.name,
                "role": outcome.metric.role,
                "kind": metric_result.kind,
                "source": _source_name(outcome.metric),
                "method": metric_result.method,
                "variance_reduction": _number(metric_result.variance_reduction),
                "error": None,
                "participation": _participation(experiment, assigned, outcome.with_outcome),
                "notes": outcome.notes,
                "arms": [_arm_json(a, assigned.get(a.arm_id, 0)) for a in metric_result.arms],
            }
        )
    if started and look_due(latest, computed_at):
        look_repo.add_looks(
            session, experiment_id=experiment.id, looks=looks_of(result.metrics, computed_at)
        )
    auto_stopped = False
    state = experiment.state
    if stop_reason is not None and state in ("running", "paused"):
        stopped = perform_action(
            runtime,
            session,
            principal,
            experiment_id=experiment.id,
            action="stop",
            reason=stop_reason,
        )
        state, auto_stopped = stopped.state, True
        _invalidate_serving(runtime, experiment.id)
    srm = result.srm
    return {
        "experiment_id": experiment.id,
        "experiment_state": state,
        "computed_at": computed_at.isoformat(),
        "alpha": alpha,
        "correction": correction,
        "method": method,
        "baseline_arm_id": result.baseline_arm_id,
        "srm": {
            "p_value": srm.p_value,
            "ok": srm.ok,
            "observed": list(srm.observed),
            "expected": list(srm.expected),
            "statistic": srm.statistic,
            "df": srm.df,
            "threshold": srm.threshold,
            "message": _srm_message(srm.ok, srm.p_value, srm.threshold),
        },
        "guardrails": {
            "breaches": breaches,
            "auto_stopped": auto_stopped,
            "stop_reason": stop_reason if auto_stopped else None,
        },
        "metrics": metrics_json,
    }


def _srm_message(ok: bool, p_value: float, threshold: float) -> str:
    if ok:
        return f"arm sizes fit the arm weights (p = {p_value:.3g})"
    return (
        f"SAMPLE RATIO MISMATCH: arm sizes are unlikely under the arm weights (p = {p_value:.3g} "
        f"< {threshold:g}); assignment or tracking is broken, so the effects are not trustworthy"
    )


def _invalidate_serving(runtime: Runtime, experiment_id: str) -> None:
    from xngin.services.serving import invalidate_experiment

    invalidate_experiment(runtime, experiment_id)


__all__ = [
    "Correction",
    "Method",
    "analyze",
    "assigned_counts",
]
