"""mail outbox, sign-up and email verification

Revision ID: e1a5c0ffee01
Revises: d4e7b2c9a013
Create Date: 2026-12-01 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e1a5c0ffee01'
down_revision = 'd4e7b2c9a013'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
