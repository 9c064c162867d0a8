"""commit position: the database identity and SQLite's commit counter

Revision ID: 0002_consistency
Revises: 0001
"""

import uuid

import sqlalchemy as sa
from alembic import op


revision = '0002_consistency'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('commit_position',
    sa.Column('identity', sa.String(length=32), nullable=False),
    sa.Column('position', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('identity', name=op.f('pk_commit_position'))
    )
    op.bulk_insert(table, [{'identity': uuid.uuid4().hex, 'position': 0}])


def downgrade() -> None:
    op.drop_table('commit_position')
