"""events: the transactional outbox and its retention horizon

Revision ID: 0004_events
Revises: 0003_abuse
"""

import sqlalchemy as sa
from alembic import op


revision = '0004_events'
down_revision = '0003_abuse'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('actor_id', sa.String(length=36), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('occurred_us', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.Text(), server_default='{}', nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_seq'), ['seq'], unique=True)

    horizon = op.create_table('event_horizon',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('pruned_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_horizon'))
    )
    op.bulk_insert(horizon, [{'id': 1, 'pruned_through': 0}])


def downgrade() -> None:
    op.drop_table('event_horizon')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_seq'))

    op.drop_table('events')
