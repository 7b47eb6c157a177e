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
    op.create_table('expert_profiles',
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('headline', sa.String(length=120), nullable=False),
    sa.Column('bio', sa.Text(), nullable=False),
    sa.Column('qualifications', sa.JSON(), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('services', sa.JSON(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('photo', sa.String(length=64), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('expert_id')
    )


def downgrade():
    op.drop_table('expert_profiles')
