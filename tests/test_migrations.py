"""Migrations build exactly the models' schema (SQLite and PostgreSQL) and go back down."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callme import create_app
from callme.config import TestConfig
from callme.extensions import db

TABLES = {"experts", "expert_sessions", "calls", "ledger", "bus_lease", "payments", "paypal_events"}
TABLES |= {"mail_outbox"}  # mail and sign-up (notify/outbox.py)
TABLES |= {"custom_domains"}  # custom domains (experts/domains.py)
TABLES |= {"expert_profiles"}  # profiles (experts/profiles.py)
TABLES |= {"expert_videos"}  # intro videos (experts/media.py)
TABLES |= {"reviews"}  # ratings after paid sessions (reviews.py)


def app_on(url):
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    return create_app({**config, "SQLALCHEMY_DATABASE_URI": url})


def schema_differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def check_upgrade_and_downgrade():
    """Run in an app context on an empty database."""
    from flask_migrate import downgrade, upgrade

    # Before: empty, and the comparison sees every table missing (so it can fail).
    assert {d[0] for d in schema_differences() if not isinstance(d, list)} >= {"add_table"}
    assert {d[1].name for d in schema_differences() if d[0] == "add_table"} == TABLES
    upgrade()
    inspector = sa.inspect(db.engine)
    assert set(inspector.get_table_names()) == TABLES | {"alembic_version"}
    assert schema_differences() == []
    # What compare_metadata does not look at: check constraints and the partial unique index.
    for table in db.metadata.sorted_tables:
        model_checks = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        assert {c["name"] for c in inspector.get_check_constraints(table.name)} == model_checks, table.name
    check_one_open_call_per_expert()
    check_amount_constraints()
    check_ledger_append_only("up")
    # One step down (payments dropped; SQLite rebuilds the ledger table) keeps the ledger guarded.
    downgrade(revision="b1d4c2a7e901")
    check_ledger_append_only("down-one")
    upgrade()
    check_ledger_append_only("up-again")
    downgrade(revision="base")
    assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 0
    # And up again: the downgrade left nothing behind that gets in the way.
    upgrade()
    assert schema_differences() == []


def check_one_open_call_per_expert():
    with db.engine.begin() as c:
        c.execute(sa.text("INSERT INTO experts (id, email, password_hash, handle, display_name, price_minor, "
                          "currency, free_seconds, cap_minutes, allowed_origins, created_at) VALUES "
                          "(1, 'a@example.com', 'x', 'a', 'A', 150, 'USD', 60, 60, '[]', CURRENT_TIMESTAMP)"))

    def add_call(call_id, state):
        with db.engine.begin() as c:
            c.execute(sa.text("INSERT INTO calls (id, expert_id, kind, state, price_minor, currency, free_seconds, "
                              "cap_minutes, created_ms) VALUES (:id, 1, 'instant', :state, 150, 'USD', 60, 60, 0)"),
                      {"id": call_id, "state": state})

    add_call("ended-1", "ended")
    add_call("ended-2", "ended")
    add_call("open-1", "ringing")
    with pytest.raises(sa.exc.IntegrityError):
        add_call("open-2", "created")
    with db.engine.begin() as c:
        c.execute(sa.text("DELETE FROM calls"))
        c.execute(sa.text("DELETE FROM experts"))


def check_ledger_append_only(key):
    """The database itself refuses to change or delete ledger rows (the row stays; DROP TABLE
    on the way down fires no trigger)."""
    with db.engine.begin() as c:
        if not c.execute(sa.text("SELECT count(*) FROM experts WHERE id = 7")).scalar():
            c.execute(sa.text("INSERT INTO experts (id, email, password_hash, handle, display_name, price_minor, "
                              "currency, free_seconds, cap_minutes, allowed_origins, created_at) VALUES "
                              "(7, 'l@example.com', 'x', 'l', 'L', 150, 'USD', 60, 60, '[]', CURRENT_TIMESTAMP)"))
        c.execute(sa.text("INSERT INTO ledger (key, kind, expert_id, amount_minor, currency, detail, created_at) "
                          "VALUES (:key, 'capture', 7, 150, 'USD', '{}', CURRENT_TIMESTAMP)"), {"key": key})
    for sql in ("UPDATE ledger SET amount_minor = 0", "DELETE FROM ledger"):
        with pytest.raises(sa.exc.DatabaseError), db.engine.begin() as c:
            c.execute(sa.text(sql))


def check_amount_constraints():
    for sql in (
        ("INSERT INTO experts (email, password_hash, handle, display_name, price_minor, currency, free_seconds, "
         "cap_minutes, allowed_origins, created_at) VALUES ('b@example.com', 'x', 'b', 'B', -1, 'USD', 60, 60, "
         "'[]', CURRENT_TIMESTAMP)"),
        "INSERT INTO bus_lease (name, holder, renewed_ms) VALUES (NULL, 'h', 0)",
    ):
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:
            c.execute(sa.text(sql))


def test_sqlite_migrations_match_the_models(tmp_path):
    app = app_on(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    with app.app_context():
        try:
            check_upgrade_and_downgrade()
        finally:
            db.session.remove()
            db.engine.dispose()


# ---- PostgreSQL -----------------------------------------------------------------------

@pytest.mark.postgres
def test_postgres_migrations_match_the_models(pg_url):
    app = app_on(pg_url)
    with app.app_context():
        try:
            assert db.engine.dialect.name == "postgresql"
            check_upgrade_and_downgrade()
        finally:
            db.session.remove()
            db.engine.dispose()
