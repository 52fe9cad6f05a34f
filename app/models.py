"""Database tables (SQLAlchemy 2.0 typed mappings). Schema changes go through Alembic in migrations/."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


# Every counter and duration is 64-bit: Ollama reports nanoseconds (2**31 ns is 2.1 s), and a busy proxy's
# request ids pass 2**31 within weeks. SQLite makes only `INTEGER PRIMARY KEY` an auto-increment rowid (and its
# INTEGER is 64-bit anyway), so ids stay INTEGER there and are BIGINT elsewhere.
ID64 = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class ProxyConfig(Base):
    """The one row of routing config. `version` grows on every change so workers notice cheaply."""

    __tablename__ = "proxy_config"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ollama_host: Mapped[str] = mapped_column(String(253))
    ollama_port: Mapped[int] = mapped_column(Integer)
    airllm_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    airllm_host: Mapped[str] = mapped_column(String(253))
    airllm_port: Mapped[int] = mapped_column(Integer)
    use_airllm_default: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OllamaNode(Base):
    """One Ollama server of the pool. The first one (lowest id) is also the seed's single Ollama target."""

    __tablename__ = "ollama_nodes"
    __table_args__ = (UniqueConstraint("host", "port", name="uq_ollama_nodes_host_port"),
                      UniqueConstraint("name", name="uq_ollama_nodes_name"),
                      UniqueConstraint("slot", name="uq_ollama_nodes_slot"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    vram_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_parallel: Mapped[int] = mapped_column(Integer, default=1)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    slot: Mapped[int] = mapped_column(Integer)  # index in the routing engine's shared in-flight board, 0..63
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelFlag(Base):
    """Per-model AirLLM switch, keyed by the normalised model name (`llama3` is stored as `llama3:latest`)."""

    __tablename__ = "model_flags"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    use_airllm: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RequestLog(Base):
    """One proxied request, written in batches after the response ended (never on the hot path)."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(ID64, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    method: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(256), index=True, nullable=True)
    backend: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[int] = mapped_column(Integer, index=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    ttfb_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    eval_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    eval_duration_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # Ollama reports ns
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # IntelliProxyLLM: the model the client asked for (when another one answered) and the request's category.
    requested_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    # The fleet: the Ollama node that answered (its name) and why it was chosen.
    node: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    route_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)


# -- statistics (app/telemetry/stats.py writes them, app/dashboard and app/metrics.py read them) --------------

# Upper bounds (ms) of the latency histogram kept per bucket; the last bucket (lat_15) counts everything slower.
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)
LATENCY_COLUMNS = tuple(f"lat_{i:02d}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class StatsCounters:
    """Additive counters shared by the per-minute and the all-time tables (every column sums across workers)."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    duration_ms_max: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)  # streamed 2xx replies only
    ttft_count: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    eval_tokens: Mapped[int] = mapped_column(BigInteger, default=0)  # tokens generated (eval_count)
    timed_eval_tokens: Mapped[int] = mapped_column(BigInteger, default=0)  # those that came with eval_duration
    eval_duration_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_00: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_01: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_02: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_03: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_04: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_05: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_06: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_07: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_08: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_09: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_10: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_11: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_12: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_13: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_14: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_15: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsMinute(StatsCounters, Base):
    """Aggregates per minute, model and backend: the charts and the last hour/day (pruned after two days)."""

    __tablename__ = "stats_minute"

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time of the minute's start
    model: Mapped[str] = mapped_column(String(256), primary_key=True)  # "" for requests without a model
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)


class StatsTotal(StatsCounters, Base):
    """Aggregates per model and backend since the first request: totals and the Prometheus counters."""

    __tablename__ = "stats_total"

    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_at: Mapped[float] = mapped_column(Float)  # Unix time
    last_at: Mapped[float] = mapped_column(Float)


class StatsNodeMinute(Base):
    """Requests and errors per minute and Ollama node (the Nodes page's rates; pruned after two days)."""

    __tablename__ = "stats_node_minute"

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time of the minute's start
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsNodeTotal(Base):
    """Requests and errors per Ollama node since the first request, and its last error (Prometheus counters)."""

    __tablename__ = "stats_node_total"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # Unix time


class TelemetryCounter(Base):
    """Counters about the telemetry itself, summed by every worker and replica (e.g. records it had to drop)."""

    __tablename__ = "telemetry_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AppSecret(Base):
    """Generated secrets every worker and replica must share (the dashboard's session key when SECRET_KEY is unset)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


assert len(LATENCY_COLUMNS) == len([c for c in StatsCounters.__annotations__ if c.startswith("lat_")])


# -- IntelliProxyLLM (app/intelli): model attributes, fallback chains, performance tests, categories -----------

class ModelAttributes(Base):
    """What the virtual model knows about one model: derived from /api/show and name hints, editable."""

    __tablename__ = "model_attributes"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)  # normalised (`llama3` -> `llama3:latest`)
    family: Mapped[str] = mapped_column(String(64), default="")
    parameter_b: Mapped[float | None] = mapped_column(Float, nullable=True)  # billions of parameters
    speed: Mapped[int] = mapped_column(Integer)  # 1 (slow) - 10 (fast)
    complexity: Mapped[int] = mapped_column(Integer)  # the hardest prompt it handles well, 1-10
    categories: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, strongest first
    capabilities: Mapped[str] = mapped_column(Text, default="[]")  # JSON list (completion, tools, vision, ...)
    bias: Mapped[int] = mapped_column(Integer, default=0)  # an operator's preference, added to the score
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # may the virtual model pick it
    edited: Mapped[bool] = mapped_column(Boolean, default=False)  # set by a person: never re-derived
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FallbackChain(Base):
    """Models to try, in order, when a model fails before its first byte."""

    __tablename__ = "fallback_chains"

    model: Mapped[str] = mapped_column(String(256), primary_key=True)  # normalised
    chain: Mapped[str] = mapped_column(Text)  # JSON list of model names as entered
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IntelliSettings(Base):
    """The one row of IntelliProxyLLM settings."""

    __tablename__ = "intelli_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fallback_timeout: Mapped[float] = mapped_column(Float)  # seconds to wait for a first byte before moving on
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PerformanceResult(Base):
    """One route of one performance test (a run with mode `all` writes one row per route)."""

    __tablename__ = "performance_results"

    id: Mapped[int] = mapped_column(ID64, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    target: Mapped[str] = mapped_column(String(16))  # direct | proxy | airllm | intelli
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # ok | unavailable | error
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class CategoryCount(Base):
    """Virtual-model requests per day, category and chosen model (the category distribution)."""

    __tablename__ = "intelli_category_counts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
