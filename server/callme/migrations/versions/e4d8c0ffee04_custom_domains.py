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
    op.create_table('custom_domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('failure', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_checked_at', sa.DateTime(), nullable=True),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'verified', 'failed')", name='ck_custom_domains_state'),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('domain')
    )
    with op.batch_alter_table('custom_domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_custom_domains_expert_id'), ['expert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_custom_domains_state'), ['state'], unique=False)


def downgrade():
    with op.batch_alter_table('custom_domains', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custom_domains_state'))
        batch_op.drop_index(batch_op.f('ix_custom_domains_expert_id'))

    op.drop_table('custom_domains')
