"""payments, paypal credentials, webhook events

Revision ID: c3f0a9d5e112
Revises: b1d4c2a7e901
Create Date: 2026-11-22 06:47:26.706865

"""
from alembic import op
import sqlalchemy as sa

from callme.models import LEDGER_GUARD_SQLITE


# revision identifiers, used by Alembic.
revision = 'c3f0a9d5e112'
down_revision = 'b1d4c2a7e901'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=32), nullable=True),
    sa.Column('intent', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('due_minor', sa.Integer(), nullable=True),
    sa.Column('captured_minor', sa.Integer(), nullable=True),
    sa.Column('paypal_client_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('authorization_id', sa.String(length=64), nullable=True),
    sa.Column('capture_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("intent IN ('AUTHORIZE', 'CAPTURE')", name='ck_payments_intent'),
    sa.CheckConstraint("state IN ('created', 'authorized', 'capture_pending', 'capture_failed', 'void_pending', 'captured', 'voided', 'partially_refunded', 'refunded', 'reversed', 'denied')", name='ck_payments_state'),
    sa.CheckConstraint('amount_minor > 0', name='ck_payments_amount_minor'),
    sa.CheckConstraint('captured_minor IS NULL OR (captured_minor > 0 AND captured_minor <= amount_minor)', name='ck_payments_captured_minor'),
    sa.CheckConstraint('due_minor IS NULL OR due_minor >= 0', name='ck_payments_due_minor'),
    sa.CheckConstraint('length(currency) = 3', name='ck_payments_currency'),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('authorization_id'),
    sa.UniqueConstraint('call_id'),
    sa.UniqueConstraint('capture_id'),
    sa.UniqueConstraint('order_id')
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_expert_id'), ['expert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_next_attempt_ms'), ['next_attempt_ms'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_state'), ['state'], unique=False)

    op.create_table('paypal_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('paypal_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_paypal_events_expert_id'), ['expert_id'], unique=False)

    with op.batch_alter_table('experts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paypal_client_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('paypal_secret_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('paypal_mode', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('paypal_webhook_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('paypal_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('paypal_connected_at', sa.DateTime(), nullable=True))

    # A plain ALTER TABLE, never batch mode: recreating the ledger would drop its append-only triggers.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("ALTER TABLE ledger ADD COLUMN payment_id INTEGER "
                   "CONSTRAINT fk_ledger_payment_id REFERENCES payments (id)")
    else:
        op.add_column('ledger', sa.Column('payment_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_ledger_payment_id', 'ledger', 'payments', ['payment_id'], ['id'])
    op.create_index(op.f('ix_ledger_payment_id'), 'ledger', ['payment_id'], unique=False)



def downgrade():
    op.drop_index(op.f('ix_ledger_payment_id'), table_name='ledger')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite cannot drop a column with a foreign key: batch mode copies the table, which
        # takes the append-only triggers with the old one; put them back.
        with op.batch_alter_table('ledger', recreate='always') as batch_op:
            batch_op.drop_column('payment_id')
        for statement in LEDGER_GUARD_SQLITE:
            op.execute(statement)
    else:
        op.drop_constraint('fk_ledger_payment_id', 'ledger', type_='foreignkey')
        op.drop_column('ledger', 'payment_id')

    # Plain DROP COLUMN (SQLite >= 3.35 too): rebuilding experts would trip the foreign keys
    # of every call and ledger row that points at it.
    for column in ('paypal_connected_at', 'paypal_version', 'paypal_webhook_id', 'paypal_mode',
                   'paypal_secret_enc', 'paypal_client_id'):
        op.execute(f'ALTER TABLE experts DROP COLUMN {column}')

    with op.batch_alter_table('paypal_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paypal_events_expert_id'))

    op.drop_table('paypal_events')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_state'))
        batch_op.drop_index(batch_op.f('ix_payments_next_attempt_ms'))
        batch_op.drop_index(batch_op.f('ix_payments_expert_id'))

    op.drop_table('payments')
