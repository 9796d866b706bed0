"""Stratified assignment of an audience: rows from the warehouse, arms from stats.

The warehouse returns the audience (IDs plus strata and covariate columns) in the order of a
seeded hash of the ID, cut to ``desired_n`` there, so sampling never sorts the table by
``random()`` and the same seed and data always give the same participants in the same order.
``stats`` then codes strata, deals arms in permuted blocks and checks balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from xngin.dwh.audience import UNLISTED_LEVEL, audience_rows
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.dwh.values import DistinctValues, field_values
from xngin.services.access import Principal
from xngin.services.catalog import (
    OpenParticipantType,
    open_participant_type,
    warehouse_queries,
)
from xngin.services.design import (
    ArmIn,
    FilterIn,
    audience_condition,
    check_arms,
    sheet_fields,
    stats_input_errors,
)
from xngin.services.runtime import Runtime
from xngin.stats.assignment import assign_arms, assign_with_rerandomization
from xngin.stats.balance import BalanceCheck, check_balance, prepare_covariates
from xngin.stats.binning import CodedField, FieldKind, code_strata

#: Covariates beyond the strata that enter the balance check (the sheet's metric fields).
MAX_BALANCE_COVARIATES = 20
BALANCE_P_THRESHOLD = 0.05


class RerandomizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tries: int = Field(default=100, ge=1, le=10_000, description="Draws allowed.")
    p_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Accept a draw whose balance p-value is at least this."
    )


@dataclass(frozen=True, eq=False)
class AssignmentOutcome:
    """An assignment of an audience, ready to show or to store."""

    sample_size: int
    arm_sizes: list[int]
    balance_check: dict[str, Any]
    strata_counts: list[dict[str, Any]]
    participant_ids: list[str]
    arm_index: NDArray[np.intp]
    stratum_code: NDArray[np.intp]
    stratum_labels: list[dict[str, Any]]

    def stratum_json(self) -> list[str]:
        """Each stratum's label as JSON text (computed once per stratum, not per participant)."""
        return [json.dumps(label, default=str, sort_keys=True) for label in self.stratum_labels]


def _kind(data_type: DataType) -> FieldKind:
    return "numeric" if data_type.is_numeric or data_type.is_temporal else "categorical"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def balance_json(check: BalanceCheck) -> dict[str, Any]:
    return {
        "f_statistic": check.f_statistic,
        "numerator_df": check.numerator_df,
        "denominator_df": check.denominator_df,
        "p_value": check.p_value,
        "balance_ok": check.balance_ok,
        "tries": check.tries,
        "tested": check.tested,
        "message": check.message,
        "covariates_tested": list(check.covariates_tested),
        "covariates_dropped": list(check.covariates_dropped),
        "covariate_means": [
            {"covariate": m.covariate, "arm_means": list(m.arm_means)}
            for m in check.covariate_means
        ],
    }


#: Categorical strata with at most this many values travel from the warehouse as level codes.
MAX_CODED_LEVELS = 1000
UNLISTED_LABEL = "(unlisted)"


def _strata_levels(
    pt: OpenParticipantType, strata_columns: list[ColumnInfo], condition: sa.ColumnElement[bool]
) -> dict[str, list[Any]]:
    """Levels of the categorical strata in the audience (one aggregate query), so that the
    audience query can return small integer codes instead of values."""
    categorical = [c for c in strata_columns if c.data_type.is_categorical]
    if not categorical:
        return {}
    listed = field_values(
        pt.engine, pt.table, categorical, filters=condition, limit=MAX_CODED_LEVELS
    )
    levels = {}
    for name, values in listed.items():
        if isinstance(values, DistinctValues) and values.complete:
            # Sorted, so a stratum's number does not depend on how often its value occurs.
            ordered = sorted((v.value for v in values.distinct), key=lambda v: (v is None, v))
            levels[name] = ordered
    return levels


def _codes_and_labels(codes: NDArray[Any], levels: list[Any]) -> tuple[NDArray[np.intp], list[Any]]:
    """Level codes from the warehouse; a value added since the levels were read gets a level of
    its own (they are then one stratum together, a safe default for a rare race)."""
    out = codes.astype(np.intp)
    labels = list(levels)
    unlisted = out == UNLISTED_LEVEL
    if unlisted.any():
        out[unlisted] = len(labels)
        labels.append(UNLISTED_LABEL)
    return out, labels


def _empty_outcome(n_arms: int) -> AssignmentOutcome:
    return AssignmentOutcome(
        sample_size=0,
        arm_sizes=[0] * n_arms,
        balance_check={
            "f_statistic": None,
            "numerator_df": None,
            "denominator_df": None,
            "p_value": None,
            "balance_ok": True,
            "tries": 0,
            "tested": False,
            "message": "no participant matches the filters",
            "covariates_tested": [],
            "covariates_dropped": [],
            "covariate_means": [],
        },
        strata_counts=[],
        participant_ids=[],
        arm_index=np.zeros(0, dtype=np.intp),
        stratum_code=np.zeros(0, dtype=np.intp),
        stratum_labels=[],
    )


def assign_audience(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    filters: list[FilterIn],
    arms: list[ArmIn],
    strata: list[str],
    desired_n: int | None,
    seed: int,
    rerandomize: RerandomizeIn | None = None,
) -> AssignmentOutcome:
    """Draw the audience and assign it to arms (stateless; nothing is stored)."""
    check_arms(arms)
    pt = open_participant_type(runtime, session, principal, participant_type)
    strata_columns = sheet_fields(pt, strata, role="strata", field="strata")
    condition = audience_condition(pt, filters)
    id_row = pt.sheet.field(pt.unique_id_field)
    assert id_row is not None
    id_column = ColumnInfo(name=id_row.field_name, data_type=id_row.data_type)
    covariate_columns = (
        strata_columns
        + [
            ColumnInfo(name=r.field_name, data_type=r.data_type)
            for r in pt.sheet.metrics()
            if r.field_name not in strata
        ][:MAX_BALANCE_COVARIATES]
    )

    with warehouse_queries(pt):
        levels = _strata_levels(pt, strata_columns, condition)
        chunks = list(
            audience_rows(
                pt.engine,
                pt.table,
                id_field=id_column,
                columns=covariate_columns,
                filters=condition,
                seed=seed,
                limit=desired_n,
                coded=levels,
            )
        )
    frame = (
        pd.concat(chunks, ignore_index=True)
        if chunks
        else pd.DataFrame(columns=[id_column.name, *(c.name for c in covariate_columns)])
    )
    n = len(frame)
    if n == 0:
        return _empty_outcome(len(arms))
    weights = [a.weight for a in arms]
    kinds = {c.name: _kind(c.data_type) for c in covariate_columns}
    strata_values: dict[str, Any] = {}
    covariate_values: dict[str, Any] = {}
    for c in covariate_columns:
        column = frame[c.name].to_numpy()
        if c.name in levels:
            codes, labels = _codes_and_labels(column, levels[c.name])
            strata_values[c.name] = CodedField(codes, labels)
            covariate_values[c.name] = np.asarray(labels, dtype=object)[codes]
        else:
            covariate_values[c.name] = column
            if c in strata_columns:
                strata_values[c.name] = column
    with stats_input_errors():
        coding = code_strata(
            {c.name: strata_values[c.name] for c in strata_columns},
            kinds={c.name: kinds[c.name] for c in strata_columns if c.name not in levels},
            n_participants=n,
        )
        covariates = prepare_covariates(covariate_values, kinds=kinds)
        # Seeds are non-negative in stats; the warehouse hash takes any 64-bit value.
        stats_seed = seed % (2**63)
        if rerandomize is None:
            # The warehouse returned the audience in seeded-hash order: a random order already.
            assignment = assign_arms(
                coding.codes,
                weights=weights,
                seed=stats_seed,
                n_strata=coding.n_strata,
                shuffled_input=True,
            )
            check = check_balance(
                covariates, assignment.arms, n_arms=len(arms), p_threshold=BALANCE_P_THRESHOLD
            )
        else:
            drawn = assign_with_rerandomization(
                coding.codes,
                weights=weights,
                seed=stats_seed,
                covariates=covariates,
                max_tries=rerandomize.max_tries,
                p_threshold=rerandomize.p_threshold,
                n_strata=coding.n_strata,
            )
            assignment, check = drawn.assignment, drawn.balance
    labels = [{k: _jsonable(v) for k, v in d.items()} for d in coding.descriptions()]
    counts = assignment.stratum_arm_counts
    return AssignmentOutcome(
        sample_size=n,
        arm_sizes=[int(x) for x in np.bincount(assignment.arms, minlength=len(arms))],
        balance_check=balance_json(check),
        strata_counts=[
            {"stratum": labels[s], "arm_sizes": [int(x) for x in counts[s]]}
            for s in range(coding.n_strata)
        ],
        participant_ids=[str(v) for v in frame[id_column.name].tolist()],
        arm_index=assignment.arms,
        stratum_code=coding.codes,
        stratum_labels=labels,
    )
