"""64-bit counters and durations; telemetry counters

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:30:00.000000

Ollama reports durations in nanoseconds: a 32-bit `eval_duration_ns` overflows after 2.1 s, which on
PostgreSQL failed the whole telemetry batch. Every counter and duration becomes BIGINT. On SQLite INTEGER is
64-bit already; the batch rebuild only changes the declared type, and ids stay INTEGER (the rowid alias).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

STATS = ["requests", "errors", "ttft_count"] + [f"lat_{i:02d}" for i in range(16)]
COLUMNS = {  # table -> [(column, nullable)]
    "proxy_config": [("version", False)],
    "request_log": [("prompt_tokens", True), ("eval_count", True), ("eval_duration_ns", True)],
    "stats_minute": [(name, False) for name in STATS],
    "stats_total": [(name, False) for name in STATS],
    "performance_results": [("tokens", True)],
    "intelli_category_counts": [("requests", False)],
}
SERIAL_IDS = ("request_log", "performance_results")  # PostgreSQL: the id column and its sequence


def _retype(old, new) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, nullable in columns:
                batch_op.alter_column(name, existing_type=old(), type_=new(), existing_nullable=nullable)
            if postgres and table in SERIAL_IDS:
                batch_op.alter_column("id", existing_type=old(), type_=new(), existing_nullable=False)
    if postgres:
        # A serial's sequence is typed too (AS integer since PostgreSQL 10): it would stop at 2**31 on its own.
        for table in SERIAL_IDS:
            op.execute(f"ALTER SEQUENCE {table}_id_seq AS {new().compile(dialect=op.get_bind().dialect)}")


def upgrade() -> None:
    _retype(sa.Integer, sa.BigInteger)
    op.create_table('telemetry_counters',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('telemetry_counters')
    _retype(sa.BigInteger, sa.Integer)
