"""proxy config, model flags and request log

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 18:54:23.618150
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_flags',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('use_airllm', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('proxy_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ollama_host', sa.String(length=253), nullable=False),
    sa.Column('ollama_port', sa.Integer(), nullable=False),
    sa.Column('airllm_enabled', sa.Boolean(), nullable=False),
    sa.Column('airllm_host', sa.String(length=253), nullable=False),
    sa.Column('airllm_port', sa.Integer(), nullable=False),
    sa.Column('use_airllm_default', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('request_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('endpoint', sa.String(length=256), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=True),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('ttfb_ms', sa.Float(), nullable=True),
    sa.Column('streamed', sa.Boolean(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('eval_count', sa.Integer(), nullable=True),
    sa.Column('eval_duration_ns', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_log_backend'), ['backend'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_log_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_log_model'), ['model'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_log_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_log_status'))
        batch_op.drop_index(batch_op.f('ix_request_log_model'))
        batch_op.drop_index(batch_op.f('ix_request_log_created_at'))
        batch_op.drop_index(batch_op.f('ix_request_log_backend'))

    op.drop_table('request_log')
    op.drop_table('proxy_config')
    op.drop_table('model_flags')
