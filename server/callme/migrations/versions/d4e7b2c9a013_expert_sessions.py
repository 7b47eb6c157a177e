"""expert sessions: logins that end when the expert logs out

Revision ID: d4e7b2c9a013
Revises: c3f0a9d5e112
Create Date: 2026-12-01 15:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4e7b2c9a013'
down_revision = 'c3f0a9d5e112'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('expert_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('expert_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_expert_sessions_expert_id'), ['expert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_expert_sessions_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('expert_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_expert_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_expert_sessions_expert_id'))

    op.drop_table('expert_sessions')
