"""ledger rows are append-only in the database too

Revision ID: b1d4c2a7e901
Revises: 6ae7a0eb8f49
Create Date: 2026-11-22 06:20:00

"""
from alembic import op

from callme.models import LEDGER_GUARD_POSTGRESQL, LEDGER_GUARD_SQLITE

revision = 'b1d4c2a7e901'
down_revision = '6ae7a0eb8f49'
branch_labels = None
depends_on = None


def upgrade():
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": LEDGER_GUARD_SQLITE, "postgresql": LEDGER_GUARD_POSTGRESQL}.get(dialect, []):
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_no_change ON ledger")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
