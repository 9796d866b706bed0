"""Datasources: engines, introspection, audience filters, aggregates pushed to the warehouse.

``dwh`` speaks SQLAlchemy Core to the participants' warehouse and knows nothing of HTTP or the app
database. Modules, one job each:

- :mod:`~xngin.dwh.engines`: one engine per datasource, connection checks, Unavailable errors;
- :mod:`~xngin.dwh.introspect`: tables, columns as ``DataType``, unique-ID candidates;
- :mod:`~xngin.dwh.filters`: audience filters compiled to one bound-parameter WHERE condition;
- :mod:`~xngin.dwh.values`: distinct values or ranges of fields (``/v1/filters`` etc.);
- :mod:`~xngin.dwh.baselines`: metric means and standard deviations (power analysis);
- :mod:`~xngin.dwh.audience`: audience size and its rows in seeded random order (assignment);
- :mod:`~xngin.dwh.dialects`: the few constructs compiled differently per warehouse.

Typical use by a service::

    engine = get_engine(name=ds.name, url=url, options=options)
    table = sa.table(table_name, *(sa.column(c.name) for c in schema.columns))
    where = compile_filters(table, request_filters, allowed=filter_types)
    values = field_values(engine, table, fields, filters=where)
"""

from xngin.dwh.audience import audience_rows, count_audience
from xngin.dwh.baselines import MetricBaseline, metric_baselines
from xngin.dwh.engines import ConnectionInfo, check_connection, get_engine
from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.introspect import list_tables, table_schema, unique_id_candidates
from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.dwh.values import DistinctValues, FieldValues, ValueCount, ValueRange, field_values

__all__ = [
    "AudienceFilter",
    "ColumnInfo",
    "ConnectionInfo",
    "DataType",
    "DistinctValues",
    "FieldValues",
    "MetricBaseline",
    "Relation",
    "TableSchema",
    "ValueCount",
    "ValueRange",
    "audience_rows",
    "check_connection",
    "compile_filters",
    "count_audience",
    "field_values",
    "get_engine",
    "list_tables",
    "metric_baselines",
    "table_schema",
    "unique_id_candidates",
]
