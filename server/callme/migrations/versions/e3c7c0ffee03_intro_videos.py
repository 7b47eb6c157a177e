"""intro videos and their posters

Revision ID: e3c7c0ffee03
Revises: e2b6c0ffee02
Create Date: 2026-12-01 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3c7c0ffee03'
down_revision = 'e2b6c0ffee02'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
