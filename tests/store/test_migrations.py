import sqlalchemy as sa

from xngin.store import db
from xngin.store.models import Base


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(app_database_url: str) -> None:
    expected = set(Base.metadata.tables)
    db.upgrade(app_database_url)
    assert _tables(app_database_url) == expected
    assert db.current_revision(app_database_url) == db.head_revision(app_database_url)

    db.downgrade(app_database_url, "base")
    assert _tables(app_database_url) == set()
    assert db.current_revision(app_database_url) is None

    db.upgrade(app_database_url)
    assert _tables(app_database_url) == expected


def test_migrations_match_the_models(app_database_url: str) -> None:
    """Autogenerate finds nothing to add: the migrations create exactly what the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db.upgrade(app_database_url)
    engine = sa.create_engine(app_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
