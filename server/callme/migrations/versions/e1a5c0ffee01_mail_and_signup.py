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
    op.create_table('mail_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('to_addr', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'sending', 'sent', 'failed', 'kept')", name='ck_mail_outbox_state'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_mail_outbox_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_outbox_to_addr'), ['to_addr'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_outbox_created_at'), ['created_at'], unique=False)

    op.add_column('experts', sa.Column('email_verified_at', sa.DateTime(), nullable=True))
    # Every expert so far was made by the operator: verified.
    op.execute("UPDATE experts SET email_verified_at = created_at")


def downgrade():
    # Plain DROP COLUMN (SQLite >= 3.35 too): rebuilding experts would trip the foreign keys
    # of the tables that point at it.
    op.execute('ALTER TABLE experts DROP COLUMN email_verified_at')

    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_outbox_created_at'))
        batch_op.drop_index(batch_op.f('ix_mail_outbox_to_addr'))
        batch_op.drop_index('ix_mail_outbox_due')

    op.drop_table('mail_outbox')
