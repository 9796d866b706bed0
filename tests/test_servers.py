import sqlalchemy as sa


def test_postgres_fixture_gives_a_private_database(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("select current_database()").scalar_one().startswith("xngin_test_")
        )
    engine.dispose()
