"""statistics tables and shared secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 19:05:32.321894
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('stats_minute',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('duration_ms_sum', sa.Float(), nullable=False),
    sa.Column('duration_ms_max', sa.Float(), nullable=False),
    sa.Column('ttft_ms_sum', sa.Float(), nullable=False),
    sa.Column('ttft_count', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('eval_tokens', sa.BigInteger(), nullable=False),
    sa.Column('timed_eval_tokens', sa.BigInteger(), nullable=False),
    sa.Column('eval_duration_ns', sa.BigInteger(), nullable=False),
    sa.Column('lat_00', sa.Integer(), nullable=False),
    sa.Column('lat_01', sa.Integer(), nullable=False),
    sa.Column('lat_02', sa.Integer(), nullable=False),
    sa.Column('lat_03', sa.Integer(), nullable=False),
    sa.Column('lat_04', sa.Integer(), nullable=False),
    sa.Column('lat_05', sa.Integer(), nullable=False),
    sa.Column('lat_06', sa.Integer(), nullable=False),
    sa.Column('lat_07', sa.Integer(), nullable=False),
    sa.Column('lat_08', sa.Integer(), nullable=False),
    sa.Column('lat_09', sa.Integer(), nullable=False),
    sa.Column('lat_10', sa.Integer(), nullable=False),
    sa.Column('lat_11', sa.Integer(), nullable=False),
    sa.Column('lat_12', sa.Integer(), nullable=False),
    sa.Column('lat_13', sa.Integer(), nullable=False),
    sa.Column('lat_14', sa.Integer(), nullable=False),
    sa.Column('lat_15', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'model', 'backend')
    )
    op.create_table('stats_total',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('first_at', sa.Float(), nullable=False),
    sa.Column('last_at', sa.Float(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('duration_ms_sum', sa.Float(), nullable=False),
    sa.Column('duration_ms_max', sa.Float(), nullable=False),
    sa.Column('ttft_ms_sum', sa.Float(), nullable=False),
    sa.Column('ttft_count', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('eval_tokens', sa.BigInteger(), nullable=False),
    sa.Column('timed_eval_tokens', sa.BigInteger(), nullable=False),
    sa.Column('eval_duration_ns', sa.BigInteger(), nullable=False),
    sa.Column('lat_00', sa.Integer(), nullable=False),
    sa.Column('lat_01', sa.Integer(), nullable=False),
    sa.Column('lat_02', sa.Integer(), nullable=False),
    sa.Column('lat_03', sa.Integer(), nullable=False),
    sa.Column('lat_04', sa.Integer(), nullable=False),
    sa.Column('lat_05', sa.Integer(), nullable=False),
    sa.Column('lat_06', sa.Integer(), nullable=False),
    sa.Column('lat_07', sa.Integer(), nullable=False),
    sa.Column('lat_08', sa.Integer(), nullable=False),
    sa.Column('lat_09', sa.Integer(), nullable=False),
    sa.Column('lat_10', sa.Integer(), nullable=False),
    sa.Column('lat_11', sa.Integer(), nullable=False),
    sa.Column('lat_12', sa.Integer(), nullable=False),
    sa.Column('lat_13', sa.Integer(), nullable=False),
    sa.Column('lat_14', sa.Integer(), nullable=False),
    sa.Column('lat_15', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'backend')
    )


def downgrade() -> None:
    op.drop_table('stats_total')
    op.drop_table('stats_minute')
    op.drop_table('app_secrets')
