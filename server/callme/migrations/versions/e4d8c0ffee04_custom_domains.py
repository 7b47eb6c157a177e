"""custom domains and their DNS verification

Revision ID: e4d8c0ffee04
Revises: e3c7c0ffee03
Create Date: 2026-12-01 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e4d8c0ffee04'
down_revision = 'e3c7c0ffee03'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
