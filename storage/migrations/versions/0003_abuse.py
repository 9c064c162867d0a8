"""shared service keys and the database limiter's sliding logs

Revision ID: 0003_abuse
Revises: 0002_consistency
"""

import sqlalchemy as sa
from alembic import op


revision = '0003_abuse'
down_revision = '0002_consistency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('service_keys',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_service_keys'))
    )
    op.create_table('limiter_log',
    sa.Column('limiter_key', sa.String(length=200), nullable=False),
    sa.Column('token', sa.String(length=36), nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('limiter_key', 'token', name=op.f('pk_limiter_log'))
    )
    with op.batch_alter_table('limiter_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_limiter_log_at_us'), ['at_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_limiter_log_limiter_key_at_us'), ['limiter_key', 'at_us'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('limiter_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_limiter_log_limiter_key_at_us'))
        batch_op.drop_index(batch_op.f('ix_limiter_log_at_us'))

    op.drop_table('limiter_log')
    op.drop_table('service_keys')
