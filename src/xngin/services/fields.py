"""What the audience looks like: the sheet's filter, metric and strata fields with their values.

Values are computed in the warehouse (one aggregate query per request) and cached for
``settings.field_values_ttl_seconds`` in the shared cache, keyed by organization, participant
type, role and the sheet, so a changed sheet never serves stale fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from xngin.dwh.schema import ColumnInfo
from xngin.dwh.values import DistinctValues, ValueRange, field_values
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


def _values_json(values: DistinctValues | ValueRange) -> dict[str, Any]:
    if isinstance(values, DistinctValues):
        return {
            "distinct": [{"value": _jsonable(v.value), "count": v.count} for v in values.distinct],
            "complete": values.complete,
        }
    return {
        "min": _jsonable(values.min),
        "max": _jsonable(values.max),
        "null_count": values.null_count,
    }


def describe_fields(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    role: FieldRole,
) -> list[FieldDescription]:
    """The sheet's fields of one role, with their values over the whole participant table."""
    pt = open_participant_type(runtime, session, principal, participant_type)
    rows = _rows_for(role, pt.sheet.fields)
    sheet_digest = hashlib.sha256(pt.sheet.model_dump_json().encode()).hexdigest()[:16]
    key = f"xngin:fields:{principal.organization_id}:{pt.name}:{role}:{sheet_digest}"
    ttl = runtime.settings.field_values_ttl_seconds
    cached = runtime.cache.get(key) if ttl else None
    if cached is not None:
        values = json.loads(cached)
    else:
        columns = [ColumnInfo(name=r.field_name, data_type=r.data_type) for r in rows]
        with warehouse_queries(pt):
            computed = field_values(pt.engine, pt.table, columns) if columns else {}
        values = {name: _values_json(v) for name, v in computed.items()}
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
