from __future__ import annotations

import pytest
import sqlalchemy as sa

from xngin.dwh import engines, introspect
from xngin.dwh.audience import count_audience
from xngin.errors import InvalidInput, Unavailable
from xngin.testing import servers

PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture(autouse=True)
def _fresh_cache():
    yield
    engines.dispose_all()


def sqlite_url(tmp_path, name="wh.sqlite"):
    return f"sqlite:///{tmp_path / name}"


def test_one_engine_per_datasource_name_and_url(tmp_path):
    url = sqlite_url(tmp_path)

    first = engines.get_engine(name="wh", url=url)

    assert engines.get_engine(name="wh", url=url) is first
    assert engines.get_engine(name="other", url=url) is not first
    assert engines.get_engine(name="wh", url=sqlite_url(tmp_path, "b.sqlite")) is not first
    assert engines.datasource_name(first) == "wh"


def test_new_options_replace_the_cached_engine(tmp_path):
    url = sqlite_url(tmp_path)
    first = engines.get_engine(name="wh", url=url, options={"pool_pre_ping": False})

    second = engines.get_engine(name="wh", url=url, options={"pool_pre_ping": True})

    assert second is not first
    assert engines.get_engine(name="wh", url=url, options={"pool_pre_ping": True}) is second


def test_forget_engine_drops_every_engine_of_that_datasource(tmp_path):
    first = engines.get_engine(name="wh", url=sqlite_url(tmp_path))
    kept = engines.get_engine(name="kept", url=sqlite_url(tmp_path))

    engines.forget_engine(name="wh")

    assert engines.get_engine(name="wh", url=sqlite_url(tmp_path)) is not first
    assert engines.get_engine(name="kept", url=sqlite_url(tmp_path)) is kept


def test_bare_schemes_mean_the_installed_drivers():
    pg = engines.get_engine(name="pg", url="postgresql://u@127.0.0.1:5432/db")
    ch = engines.get_engine(name="ch", url="clickhouse://127.0.0.1:9000/default")

    assert pg.url.drivername == "postgresql+psycopg"
    assert ch.url.drivername == "clickhouse+native"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@h/db", ["'mysql'", "supported", "duckdb", "clickhouse"]),
        ("not a url", ["not a SQLAlchemy URL"]),
        (f"::{PASSWORD}@@", ["not a SQLAlchemy URL"]),
        ("redshift+redshift_connector://u@h:5439/db", ["redshift_connector", "not installed"]),
        ("postgresql+nosuchdriver://u@h/db", ["not installed"]),
    ],
)
def test_unusable_urls_are_invalid_input_naming_what_to_do(url, words):
    for attempt in (
        lambda: engines.ensure_dialect_available(url),
        lambda: engines.get_engine(name="wh", url=url),
    ):
        with pytest.raises(InvalidInput) as info:
            attempt()
        assert info.value.field == "url"
        for word in words:
            assert word in info.value.message
        assert PASSWORD not in info.value.message


@pytest.mark.parametrize(
    ("url", "module", "words"),
    [
        (
            "bigquery://project/dataset",
            "sqlalchemy_bigquery",
            ["sqlalchemy-bigquery", "xngin[bigquery]"],
        ),
        ("snowflake://u:p@account/db", "snowflake.sqlalchemy", ["snowflake-sqlalchemy"]),
    ],
)
def test_warehouse_dialects_are_accepted_when_installed_and_named_when_not(
    url, module, words, monkeypatch
):
    """The dev environment installs these dialects; hiding the package shows the message a
    user without the extra gets."""
    import importlib.util
    import sys

    assert importlib.util.find_spec(module) is not None, f"{module} is a dev dependency"
    engines.ensure_dialect_available(url)
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    monkeypatch.setattr(sa.dialects.registry, "impls", {})
    with pytest.raises(InvalidInput) as info:
        engines.ensure_dialect_available(url)
    for word in words:
        assert word in info.value.message


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"pool_sise": 5}, "options.pool_sise"),
        ({"pool_size": "5"}, "options.pool_size"),
        ({"pool_pre_ping": "yes"}, "options.pool_pre_ping"),
        ({"connect_args": ["x"]}, "options.connect_args"),
        ({"schema": ""}, "options.schema"),
        ({"schema": "main"}, "options.schema"),  # SQLite has no schemas to switch to
    ],
)
def test_bad_options_are_invalid_input(tmp_path, options, field):
    with pytest.raises(InvalidInput) as info:
        engines.get_engine(name="wh", url=sqlite_url(tmp_path), options=options)
    assert info.value.field == field


def test_check_connection_reports_dialect_and_version(warehouse):
    info = engines.check_connection(warehouse.engine)

    assert info.dialect == warehouse.engine.dialect.name
    assert info.datasource == f"test-{warehouse.backend}"
    assert info.latency_ms >= 0


UNREACHABLE = [
    pytest.param(f"postgresql+psycopg://xngin:{PASSWORD}@127.0.0.1:1/warehouse", id="postgresql"),
    pytest.param(f"clickhouse+native://xngin:{PASSWORD}@127.0.0.1:1/warehouse", id="clickhouse"),
    pytest.param("duckdb:////nonexistent-dir/wh.duckdb", id="duckdb"),
    pytest.param("sqlite:////nonexistent-dir/wh.sqlite", id="sqlite"),
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_unreachable_warehouse_is_unavailable_without_the_password(url):
    engine = engines.get_engine(name="sales-dw", url=url)

    with pytest.raises(Unavailable) as info:
        engines.check_connection(engine)

    message = info.value.message
    assert "sales-dw" in message
    assert "cannot be reached" in message
    assert PASSWORD not in message
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("url", UNREACHABLE)
def test_queries_on_an_unreachable_warehouse_raise_unavailable(url):
    engine = engines.get_engine(name="sales-dw", url=url)

    with pytest.raises(Unavailable) as info:
        count_audience(engine, sa.table("participants"), None)
    assert PASSWORD not in info.value.message


@pytest.mark.clickhouse
def test_clickhouse_wrong_password_is_unavailable_and_redacted():
    servers.require_server("ClickHouse", servers.CLICKHOUSE_HOST, servers.CLICKHOUSE_PORT)
    url = (
        f"clickhouse+native://default:{PASSWORD}@{servers.CLICKHOUSE_HOST}:"
        f"{servers.CLICKHOUSE_PORT}/default"
    )
    engine = engines.get_engine(name="ch-dw", url=url)

    with pytest.raises(Unavailable) as info:
        introspect.list_tables(engine)

    assert "ch-dw" in info.value.message
    assert "password" in info.value.message.lower()
    assert PASSWORD not in info.value.message


def test_password_is_redacted_even_when_the_driver_repeats_it():
    url = sa.make_url(f"postgresql+psycopg://u:{PASSWORD}@h/db")
    text = engines._redact(f"could not log in with {PASSWORD} (encoded: s3cr3t-Pa55word)", url)
    assert PASSWORD not in text


def test_duckdb_schema_option_makes_that_schema_the_default(tmp_path):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    setup = sa.create_engine(url)
    with setup.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA analytics")
        conn.exec_driver_sql("CREATE TABLE analytics.people (id INTEGER, region VARCHAR)")
        conn.exec_driver_sql("INSERT INTO analytics.people VALUES (1, 'n'), (2, 's')")
        conn.exec_driver_sql("CREATE TABLE main.people (id INTEGER)")
    setup.dispose()

    engine = engines.get_engine(name="wh", url=url, options={"schema": "analytics"})

    assert engines.datasource_schema(engine) == "analytics"
    assert [c.name for c in introspect.table_schema(engine, "people").columns] == ["id", "region"]
    assert count_audience(engine, sa.table("people"), None) == 2
    assert introspect.list_tables(engine) == ["people"]


@pytest.mark.postgres
def test_postgres_schema_option_sets_the_search_path(postgres_url):
    setup = sa.create_engine(postgres_url)
    with setup.begin() as conn:
        conn.exec_driver_sql('CREATE SCHEMA "Analytics"')
        conn.exec_driver_sql('CREATE TABLE "Analytics".people (id INTEGER, region TEXT)')
        conn.exec_driver_sql("INSERT INTO \"Analytics\".people VALUES (1, 'n'), (2, 's'), (3, 'e')")
    setup.dispose()

    engine = engines.get_engine(name="pg", url=postgres_url, options={"schema": "Analytics"})

    assert [c.name for c in introspect.table_schema(engine, "people").columns] == ["id", "region"]
    assert count_audience(engine, sa.table("people"), None) == 3
    # The setting survives the pool handing the connection out again.
    assert count_audience(engine, sa.table("people"), None) == 3


@pytest.mark.clickhouse
def test_clickhouse_schema_option_is_the_database(clickhouse_database):
    from clickhouse_driver import Client

    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT)
    client.execute(f"CREATE TABLE {clickhouse_database}.people (id Int32) ENGINE = Memory")
    client.execute(f"INSERT INTO {clickhouse_database}.people VALUES", [(1,), (2,)])
    client.disconnect()
    url = f"clickhouse+native://{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/default"

    engine = engines.get_engine(name="ch", url=url, options={"schema": clickhouse_database})

    assert count_audience(engine, sa.table("people"), None) == 2
    assert introspect.table_schema(engine, "people").columns[0].name == "id"
