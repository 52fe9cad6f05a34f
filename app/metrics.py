"""`GET /metrics` on the dashboard port: Prometheus text format, built from the database aggregates.

The counters come from `stats_total`, which every worker and replica adds to, so one scrape of any worker sees
the whole service (a per-process registry would show one worker's share). Backend health and the AirLLM queue
come from the health report (cached for HEALTH_CACHE_SECONDS).
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                   SummaryMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import select

from .models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, StatsTotal, TelemetryCounter
from .node_metrics import NodeCollector

bp = Blueprint("metrics", __name__)
LABELS = ["model", "backend"]


class DatabaseCollector:
    """A prometheus_client collector that reads the aggregates at scrape time."""

    def __init__(self, session_factory, health):
        self.session_factory = session_factory
        self.health = health

    def collect(self):
        requests = CounterMetricFamily("intelliproxy_requests", "Proxied requests.", labels=LABELS)
        errors = CounterMetricFamily("intelliproxy_request_errors",
                                     "Proxied requests that failed (HTTP 4xx/5xx or an error in the stream).",
                                     labels=LABELS)
        tokens = CounterMetricFamily("intelliproxy_tokens_generated", "Tokens generated (eval_count).",
                                     labels=LABELS)
        prompt = CounterMetricFamily("intelliproxy_prompt_tokens", "Prompt tokens evaluated (prompt_eval_count).",
                                     labels=LABELS)
        eval_seconds = CounterMetricFamily("intelliproxy_eval_seconds",
                                           "Generation time reported by the backend (eval_duration).", labels=LABELS)
        ttft = SummaryMetricFamily("intelliproxy_time_to_first_token_seconds",
                                   "Time to the first byte of streamed successful replies.", labels=LABELS)
        latency = HistogramMetricFamily("intelliproxy_request_duration_seconds",
                                        "Time from request to the end of the reply.", labels=LABELS)
        dropped = CounterMetricFamily("intelliproxy_telemetry_records_dropped",
                                      "Request records never written: set aside after failing on their own "
                                      "(unwritable) or pushed out of a full queue (overflow).", labels=["reason"])
        with self.session_factory() as session:
            rows = session.execute(select(StatsTotal)).scalars().all()
            counters = dict(session.execute(select(TelemetryCounter.name, TelemetryCounter.value)).all())
        for reason in ("unwritable", "overflow"):
            dropped.add_metric([reason], counters.get(reason, 0))
        for row in rows:
            labels = [row.model or "none", row.backend]
            requests.add_metric(labels, row.requests)
            errors.add_metric(labels, row.errors)
            tokens.add_metric(labels, row.eval_tokens)
            prompt.add_metric(labels, row.prompt_tokens)
            eval_seconds.add_metric(labels, row.eval_duration_ns / 1e9)
            ttft.add_metric(labels, count_value=row.ttft_count, sum_value=row.ttft_ms_sum / 1000.0)
            buckets, cumulative = [], 0
            for bound, column in zip(LATENCY_BOUNDS_MS, LATENCY_COLUMNS):
                cumulative += getattr(row, column)
                buckets.append((_le(bound / 1000.0), cumulative))
            buckets.append(("+Inf", row.requests))
            latency.add_metric(labels, buckets, sum_value=row.duration_ms_sum / 1000.0)
        yield from (requests, errors, tokens, prompt, eval_seconds, ttft, latency, dropped)
        yield from self._health_metrics()

    def _health_metrics(self):
        report = self.health.report()
        up = GaugeMetricFamily("intelliproxy_backend_up", "1 when the backend answered its last health probe.",
                               labels=["backend"])
        rtt = GaugeMetricFamily("intelliproxy_backend_rtt_seconds", "Round-trip time of the last health probe.",
                                labels=["backend"])
        enabled = GaugeMetricFamily("intelliproxy_airllm_enabled", "1 when the AirLLM service is enabled.")
        ollama, airllm = report.get("ollama", {}), report.get("airllm", {})
        enabled.add_metric([], 1 if airllm.get("enabled") else 0)
        up.add_metric(["ollama"], 1 if ollama.get("reachable") else 0)
        if ollama.get("rtt_ms") is not None:
            rtt.add_metric(["ollama"], ollama["rtt_ms"] / 1000.0)
        if airllm.get("enabled"):
            up.add_metric(["airllm"], 1 if airllm.get("reachable") else 0)
            if airllm.get("rtt_ms") is not None:
                rtt.add_metric(["airllm"], airllm["rtt_ms"] / 1000.0)
        yield from (up, rtt, enabled)
        queue = ((airllm.get("details") or {}).get("queue")) if isinstance(airllm.get("details"), dict) else None
        if isinstance(queue, dict):
            depth = GaugeMetricFamily("intelliproxy_airllm_queue_depth", "Requests waiting on the AirLLM server.")
            depth.add_metric([], queue.get("depth") or 0)
            running = GaugeMetricFamily("intelliproxy_airllm_queue_running",
                                        "Requests the AirLLM server is generating for now (0 or 1).")
            running.add_metric([], 1 if queue.get("running") else 0)
            yield from (depth, running)


def _le(seconds: float) -> str:
    return f"{seconds:g}"


@bp.get("/metrics")
def metrics():
    """Prometheus exposition (text format 0.0.4)."""
    services = current_app.extensions["intelliproxy"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(services.session_factory, services.health))
    registry.register(NodeCollector(services))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
