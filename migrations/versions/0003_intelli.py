"""IntelliProxyLLM: model attributes, fallback chains, settings, performance tests, category counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 19:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_attributes',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('parameter_b', sa.Float(), nullable=True),
    sa.Column('speed', sa.Integer(), nullable=False),
    sa.Column('complexity', sa.Integer(), nullable=False),
    sa.Column('categories', sa.Text(), nullable=False),
    sa.Column('capabilities', sa.Text(), nullable=False),
    sa.Column('bias', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('edited', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('fallback_chains',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('chain', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model')
    )
    op.create_table('intelli_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fallback_timeout', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('performance_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('tokens', sa.Integer(), nullable=True),
    sa.Column('tokens_per_s', sa.Float(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('performance_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_performance_results_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_performance_results_run_id'), ['run_id'], unique=False)
    op.create_table('intelli_category_counts',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'category', 'model')
    )
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_model', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('category', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_request_log_category'), ['category'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_log_category'))
        batch_op.drop_column('category')
        batch_op.drop_column('requested_model')
    op.drop_table('intelli_category_counts')
    with op.batch_alter_table('performance_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_performance_results_run_id'))
        batch_op.drop_index(batch_op.f('ix_performance_results_created_at'))
    op.drop_table('performance_results')
    op.drop_table('intelli_settings')
    op.drop_table('fallback_chains')
    op.drop_table('model_attributes')
