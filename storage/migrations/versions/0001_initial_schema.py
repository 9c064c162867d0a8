"""initial schema

Revision ID: 0001
Revises: 
"""

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blocks',
    sa.Column('blocker_id', sa.String(length=36), nullable=False),
    sa.Column('blocked_id', sa.String(length=36), nullable=False),
    sa.Column('block_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('blocker_id <> blocked_id', name=op.f('ck_blocks_no_self')),
    sa.PrimaryKeyConstraint('blocker_id', 'blocked_id', name=op.f('pk_blocks')),
    sa.UniqueConstraint('block_id', name=op.f('uq_blocks_block_id'))
    )
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blocks_blocked_id_blocker_id'), ['blocked_id', 'blocker_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_blocks_blocker_id_created_us_blocked_id'), ['blocker_id', 'created_us', 'blocked_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_blocks_created_us'), ['created_us'], unique=False)

    op.create_table('connection_requests',
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('requester_id', sa.String(length=36), nullable=False),
    sa.Column('recipient_id', sa.String(length=36), nullable=False),
    sa.Column('user_low', sa.String(length=36), nullable=False),
    sa.Column('user_high', sa.String(length=36), nullable=False),
    sa.Column('message', sa.Text(), server_default='', nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('requester_id <> recipient_id', name=op.f('ck_connection_requests_no_self')),
    sa.CheckConstraint('user_low < user_high', name=op.f('ck_connection_requests_ordered_pair')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_connection_requests')),
    sa.UniqueConstraint('user_low', 'user_high', name=op.f('uq_connection_requests_user_low_user_high'))
    )
    with op.batch_alter_table('connection_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connection_requests_created_us'), ['created_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_connection_requests_recipient_id_created_us_request_id'), ['recipient_id', 'created_us', 'request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_connection_requests_requester_id_created_us_request_id'), ['requester_id', 'created_us', 'request_id'], unique=False)

    op.create_table('connections',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('other_id', sa.String(length=36), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('user_id <> other_id', name=op.f('ck_connections_no_self')),
    sa.PrimaryKeyConstraint('user_id', 'other_id', name=op.f('pk_connections'))
    )
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connections_created_us'), ['created_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_connections_user_id_created_us_other_id'), ['user_id', 'created_us', 'other_id'], unique=False)

    op.create_table('follows',
    sa.Column('follower_id', sa.String(length=36), nullable=False),
    sa.Column('followee_id', sa.String(length=36), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('follower_id <> followee_id', name=op.f('ck_follows_no_self')),
    sa.PrimaryKeyConstraint('follower_id', 'followee_id', name=op.f('pk_follows'))
    )
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follows_created_us'), ['created_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_follows_followee_id_created_us_follower_id'), ['followee_id', 'created_us', 'follower_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_follows_follower_id_created_us_followee_id'), ['follower_id', 'created_us', 'followee_id'], unique=False)

    op.create_table('reports',
    sa.Column('report_id', sa.String(length=36), nullable=False),
    sa.Column('reporter_id', sa.String(length=36), nullable=False),
    sa.Column('reported_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.SmallInteger(), nullable=False),
    sa.Column('details', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('resolved_by', sa.String(length=36), server_default='', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.Column('resolved_us', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_reports'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_created_us'), ['created_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_reported_id'), ['reported_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_status_created_us_report_id'), ['status', 'created_us', 'report_id'], unique=False)

    op.create_table('user_counters',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('followers', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('following', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('connections', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('incoming_requests', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('outgoing_requests', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('blocked', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_counters'))
    )
    op.create_table('users',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('role', sa.SmallInteger(), nullable=False),
    sa.Column('display_name', sa.Text(), server_default='', nullable=False),
    sa.Column('avatar_url', sa.Text(), server_default='', nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.Column('updated_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_created_us'), ['created_us'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_created_us'))

    op.drop_table('users')
    op.drop_table('user_counters')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_status_created_us_report_id'))
        batch_op.drop_index(batch_op.f('ix_reports_reported_id'))
        batch_op.drop_index(batch_op.f('ix_reports_created_us'))

    op.drop_table('reports')
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follows_follower_id_created_us_followee_id'))
        batch_op.drop_index(batch_op.f('ix_follows_followee_id_created_us_follower_id'))
        batch_op.drop_index(batch_op.f('ix_follows_created_us'))

    op.drop_table('follows')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connections_user_id_created_us_other_id'))
        batch_op.drop_index(batch_op.f('ix_connections_created_us'))

    op.drop_table('connections')
    with op.batch_alter_table('connection_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connection_requests_requester_id_created_us_request_id'))
        batch_op.drop_index(batch_op.f('ix_connection_requests_recipient_id_created_us_request_id'))
        batch_op.drop_index(batch_op.f('ix_connection_requests_created_us'))

    op.drop_table('connection_requests')
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blocks_created_us'))
        batch_op.drop_index(batch_op.f('ix_blocks_blocker_id_created_us_blocked_id'))
        batch_op.drop_index(batch_op.f('ix_blocks_blocked_id_blocker_id'))

    op.drop_table('blocks')
