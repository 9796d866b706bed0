"""Propose a first sheet for a participant table, for its authors to correct.

The proposal is deterministic (same schema and counts, same sheet) and errs on the side of
offering a use: removing a mark is easier for a sheet's authors than discovering a column could
have had one. It never needs the table's data beyond the optional distinct counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.sheets.model import STRATA_MAX_DISTINCT, ParticipantSheet, SheetRow

_CONTINUOUS = (DataType.FLOAT, DataType.DECIMAL)


def bootstrap_sheet(
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    unique_id_candidates: Sequence[str] = (),
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
) -> ParticipantSheet:
    """Propose a sheet with one row per column of ``schema``, in the table's column order.

    Proposals:

    - unique ID: see :func:`guess_unique_id`; the ID gets no other mark;
    - metric: every numeric or boolean column;
    - filter: every numeric, date or timestamp column, and every low-cardinality column;
    - strata: every low-cardinality column with at least two values, except float/decimal ones
      (continuous values would need binning);
    - low cardinality: at most ``strata_max_distinct`` distinct values according to
      ``distinct_counts``; booleans count as low cardinality even without counts. Without a count
      a text column is neither filter nor stratum: it might be a name or an e-mail address;
    - description and extra are left empty for the authors.

    Parameters
    ----------
    schema
        The participant table.
    distinct_counts
        Optional number of distinct values per column name; names not in the table are ignored.
    unique_id_candidates
        Column names to prefer as unique ID, best first (e.g. the table's primary key).
    strata_max_distinct
        The low-cardinality threshold (>= 1).

    Returns
    -------
    ParticipantSheet
        The proposal; it may still fail validation, e.g. when no unique ID was found.
    """
    if strata_max_distinct < 1:
        raise ValueError(f"strata_max_distinct must be >= 1, got {strata_max_distinct}")
    counts = distinct_counts or {}
    unique_id = guess_unique_id(schema, unique_id_candidates)
    rows = []
    for column in schema.columns:
        if column.name == unique_id:
            rows.append(
                SheetRow(field_name=column.name, data_type=column.data_type, is_unique_id=True)
            )
            continue
        rows.append(_propose_row(column, counts.get(column.name), strata_max_distinct))
    return ParticipantSheet(fields=tuple(rows))


def guess_unique_id(schema: TableSchema, candidates: Sequence[str] = ()) -> str | None:
    """Name the column most likely to identify a participant, or None.

    The first of ``candidates`` that is a column of the table wins (exact spelling). Otherwise a
    column named ``id``, ``<table>_id`` (also with the table name made singular: ``households`` ->
    ``household_id``, ``cities`` -> ``city_id``) or ``uuid``, compared case-insensitively and in
    that order. Boolean columns are never proposed. A schema-qualified table name
    (``public.people``) is reduced to its last part.
    """
    usable = [c for c in schema.columns if c.data_type is not DataType.BOOLEAN]
    exact = {c.name for c in usable}
    for name in candidates:
        if name in exact:
            return name
    by_folded_name: dict[str, str] = {}
    for column in usable:
        by_folded_name.setdefault(column.name.casefold(), column.name)
    for name in _conventional_id_names(schema.table_name):
        if name in by_folded_name:
            return by_folded_name[name]
    return None


def _conventional_id_names(table_name: str) -> list[str]:
    table = table_name.rsplit(".", 1)[-1].strip('"`').casefold()
    names = ["id", f"{table}_id"]
    if table.endswith("ies"):
        names.append(f"{table[:-3]}y_id")
    elif table.endswith("s"):
        names.append(f"{table[:-1]}_id")
    names.append("uuid")
    return names


def _propose_row(column: ColumnInfo, distinct: int | None, strata_max_distinct: int) -> SheetRow:
    data_type = column.data_type
    if data_type is DataType.BOOLEAN:
        # A boolean has at most two values (plus NULL) whatever the counts say.
        low_cardinality = True
    else:
        low_cardinality = distinct is not None and distinct <= strata_max_distinct
    # A column with a single value cannot separate participants into strata.
    has_variation = distinct is None or distinct >= 2
    return SheetRow(
        field_name=column.name,
        data_type=data_type,
        is_metric=data_type.can_be_metric,
        is_filter=data_type.is_numeric or data_type.is_temporal or low_cardinality,
        is_strata=low_cardinality and has_variation and data_type not in _CONTINUOUS,
    )
