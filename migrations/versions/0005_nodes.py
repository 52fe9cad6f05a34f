"""the Ollama node pool, per-node statistics, and the node that answered each logged request

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ollama_nodes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('vram_gb', sa.Float(), nullable=True),
    sa.Column('num_parallel', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host', 'port', name='uq_ollama_nodes_host_port'),
    sa.UniqueConstraint('name', name='uq_ollama_nodes_name'),
    sa.UniqueConstraint('slot', name='uq_ollama_nodes_slot')
    )
    # An upgraded install keeps its target: the config row's Ollama becomes the pool's first node (slot 0).
    op.execute(
        "INSERT INTO ollama_nodes (name, host, port, enabled, vram_gb, num_parallel, weight, slot, created_at, "
        "updated_at) SELECT substr(ollama_host || ':' || ollama_port, 1, 64), ollama_host, ollama_port, "
        "TRUE, NULL, 1, 1.0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM proxy_config WHERE id = 1"
    )
    op.create_table('stats_node_minute',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('errors', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'node')
    )
    op.create_table('stats_node_total',
    sa.Column('node', sa.String(length=64), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('errors', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('node')
    )
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('route_reason', sa.String(length=256), nullable=True))
        batch_op.create_index(batch_op.f('ix_request_log_node'), ['node'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_log_node'))
        batch_op.drop_column('route_reason')
        batch_op.drop_column('node')
    op.drop_table('stats_node_total')
    op.drop_table('stats_node_minute')
    op.drop_table('ollama_nodes')
