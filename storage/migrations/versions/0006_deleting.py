"""deleting: a user's deletion in progress is also marked on their counter row

Revision ID: 0006_deleting
Revises: 0005_deletion
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_deleting'
down_revision = '0005_deletion'
branch_labels = None
depends_on = None

_DELETE = 1  # storage.deletion.JobKind.DELETE


def upgrade() -> None:
    with op.batch_alter_table('user_counters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleting', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Deletions in progress: their users' rows carry the mark from now on.
    op.execute(
        sa.text(
            "INSERT INTO user_counters (user_id) SELECT user_id FROM user_jobs WHERE kind = :kind "
            "AND user_id NOT IN (SELECT user_id FROM user_counters)"
        ).bindparams(kind=_DELETE)
    )
    op.execute(
        sa.text(
            "UPDATE user_counters SET deleting = :yes WHERE user_id IN (SELECT user_id FROM user_jobs WHERE kind = :kind)"
        ).bindparams(sa.bindparam('yes', True, type_=sa.Boolean()), kind=_DELETE)
    )


def downgrade() -> None:
    with op.batch_alter_table('user_counters', schema=None) as batch_op:
        batch_op.drop_column('deleting')
