"""deletion: big-account jobs (a deleted user's tombstone, lifting a promoted user's blocks)

Revision ID: 0005_deletion
Revises: 0004_events
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_deletion'
down_revision = '0004_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_jobs',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), server_default='', nullable=False),
    sa.Column('lease_until_us', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'kind', name=op.f('pk_user_jobs'))
    )
    with op.batch_alter_table('user_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_jobs_lease_until_us'), ['lease_until_us'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_jobs_lease_until_us'))

    op.drop_table('user_jobs')
