"""What the audience looks like: the sheet's filter, metric and strata fields with their values.

Values are computed in the warehouse and cached for
``settings.field_values_ttl_seconds`` in the shared cache, keyed by organization, participant
type, role and the sheet, so a changed sheet never serves stale fields. Two warehouse round trips
make them: distinct values and ranges first, then the histograms of numeric, date and timestamp
fields between the ranges found (a histogram's bins need its field's min and max).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from xngin.dwh.schema import ColumnInfo, DataType
from xngin.dwh.values import (
    DistinctValues,
    Histogram,
    ValueRange,
    field_histograms,
    field_values,
)
from xngin.services.access import Principal
from xngin.services.catalog import open_participant_type, warehouse_queries
from xngin.services.runtime import Runtime
from xngin.sheets import SheetRow


class FieldRole(StrEnum):
    FILTER = "filter"
    METRIC = "metric"
    STRATA = "strata"


@dataclass(frozen=True, slots=True)
class FieldDescription:
    field_name: str
    data_type: str
    description: str
    values: dict[str, Any]


def _rows_for(role: FieldRole, rows: tuple[SheetRow, ...]) -> list[SheetRow]:
    flag = {
        FieldRole.FILTER: "is_filter",
        FieldRole.METRIC: "is_metric",
        FieldRole.STRATA: "is_strata",
    }
    return [row for row in rows if getattr(row, flag[role])]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


#: Bins of the histograms shown with numeric, date and timestamp fields.
HISTOGRAM_BINS = 20

# Dates and timestamps are binned as numbers; the unit tells a client how to read the edges.
_EDGE_UNITS = {DataType.DATE: "epoch_days", DataType.TIMESTAMP: "epoch_seconds"}


def _histogram_json(histogram: Histogram, data_type: DataType) -> dict[str, Any]:
    shown: dict[str, Any] = {"edges": list(histogram.edges), "counts": list(histogram.counts)}
    if data_type in _EDGE_UNITS:
        shown["unit"] = _EDGE_UNITS[data_type]
    return shown


def _values_json(
    values: DistinctValues | ValueRange,
    histogram: Histogram | None = None,
    data_type: DataType | None = None,
) -> dict[str, Any]:
    if isinstance(values, DistinctValues):
        return {
            "distinct": [{"value": _jsonable(v.value), "count": v.count} for v in values.distinct],
            "complete": values.complete,
        }
    shown = {
        "min": _jsonable(values.min),
        "max": _jsonable(values.max),
        "null_count": values.null_count,
    }
    if histogram is not None and data_type is not None:
        shown["histogram"] = _histogram_json(histogram, data_type)
    return shown


def describe_fields(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    role: FieldRole,
    histograms: bool = False,
) -> list[FieldDescription]:
    """The sheet's fields of one role, with their values over the whole participant table.

    Categorical fields get ``{"distinct", "complete"}``; numeric, date and timestamp fields
    ``{"min", "max", "null_count"}``. With ``histograms`` they also get ``"histogram"`` as
    ``{"edges", "counts"}`` (:data:`HISTOGRAM_BINS` equal-width bins, ``numpy.histogram``'s edge
    convention, plus ``"unit": "epoch_days" | "epoch_seconds"`` for dates and timestamps; absent
    when every value is NULL). Histograms cost a second warehouse query, one scan per field, so
    they are asked for rather than always computed.
    """
    pt = open_participant_type(runtime, session, principal, participant_type)
    rows = _rows_for(role, pt.sheet.fields)
    sheet_digest = hashlib.sha256(pt.sheet.model_dump_json().encode()).hexdigest()[:16]
    shape = "h" if histograms else "v"
    key = f"xngin:fields:v2:{shape}:{principal.organization_id}:{pt.name}:{role}:{sheet_digest}"
    ttl = runtime.settings.field_values_ttl_seconds
    cached = runtime.cache.get(key) if ttl else None
    if cached is not None:
        values = json.loads(cached)
    else:
        columns = [ColumnInfo(name=r.field_name, data_type=r.data_type) for r in rows]
        with warehouse_queries(pt):
            computed = field_values(pt.engine, pt.table, columns) if columns else {}
            ranges = {n: v for n, v in computed.items() if isinstance(v, ValueRange)}
            drawn = (
                field_histograms(pt.engine, pt.table, columns, ranges=ranges, bins=HISTOGRAM_BINS)
                if histograms and ranges
                else {}
            )
        types = {c.name: c.data_type for c in columns}
        values = {
            name: _values_json(v, drawn.get(name), types[name]) for name, v in computed.items()
        }
        if ttl:
            runtime.cache.set(key, json.dumps(values).encode(), ttl=ttl)
    return [
        FieldDescription(
            field_name=r.field_name,
            data_type=str(r.data_type),
            description=r.description,
            values=values[r.field_name],
        )
        for r in rows
    ]
