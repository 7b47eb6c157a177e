"""expert profiles: headline, bio, qualifications, languages, services, photo, timezone

Revision ID: e2b6c0ffee02
Revises: e1a5c0ffee01
Create Date: 2026-12-01 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2b6c0ffee02'
down_revision = 'e1a5c0ffee01'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
