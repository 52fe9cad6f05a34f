"""Database tables (SQLAlchemy 2.0 typed mappings). Schema changes go through Alembic in migrations/."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    version: Mapped[int] = mapped_column(Integer, default=1)
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

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
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
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    eval_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    eval_duration_ns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
