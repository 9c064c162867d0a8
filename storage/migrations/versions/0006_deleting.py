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


    # Whoever adds a deletion's tombstone (this version's DeleteUser, or a
    # process of an earlier one still serving during a rolling deploy)
    # marks the user's counter row with it, creating the row if need be.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE FUNCTION mark_deleting() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO user_counters (user_id, deleting) VALUES (NEW.user_id, true) "
            "ON CONFLICT (user_id) DO UPDATE SET deleting = true; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER mark_deleting AFTER INSERT ON user_jobs FOR EACH ROW "
            f"WHEN (NEW.kind = {_DELETE}) EXECUTE FUNCTION mark_deleting()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER mark_deleting AFTER INSERT ON user_jobs FOR EACH ROW WHEN NEW.kind = {_DELETE} BEGIN "
            "INSERT INTO user_counters (user_id, deleting) VALUES (NEW.user_id, 1) "
            "ON CONFLICT (user_id) DO UPDATE SET deleting = 1; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER mark_deleting ON user_jobs")
        op.execute("DROP FUNCTION mark_deleting()")
    else:
        op.execute("DROP TRIGGER mark_deleting")
    with op.batch_alter_table('user_counters', schema=None) as batch_op:
        batch_op.drop_column('deleting')
