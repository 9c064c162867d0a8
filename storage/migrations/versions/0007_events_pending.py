"""events_pending: the events the sequencer has yet to number, found through
an index of their own, and VACUUM of the events table by absolute counts

Revision ID: 0007_events_pending
Revises: 0006_deleting
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_events_pending'
down_revision = '0006_deleting'
branch_labels = None
depends_on = None

# Autovacuum's defaults wait for a fifth of a table to change. Every event is
# inserted, then updated once by the sequencer, so under a steady write rate
# the dead index entries the sequencer's scan passes would grow with the
# retained log (a fifth of seven days of events); by count they stay bounded.
_VACUUM = {
    'autovacuum_vacuum_scale_factor': '0',
    'autovacuum_vacuum_threshold': '20000',
    'autovacuum_vacuum_insert_scale_factor': '0',
    'autovacuum_vacuum_insert_threshold': '20000',
}


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_events_pending',
            ['id'],
            unique=False,
            postgresql_where=sa.text('seq IS NULL'),
            sqlite_where=sa.text('seq IS NULL'),
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE events SET (' + ', '.join(f'{k} = {v}' for k, v in _VACUUM.items()) + ')')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE events RESET (' + ', '.join(_VACUUM) + ')')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_pending')
