"""Per-node statistics (app/telemetry/node_stats.py) and the node part of /metrics (app/node_metrics.py)."""
from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.models import StatsNodeMinute, StatsNodeTotal
from app.telemetry.node_stats import NodeStatsSink, node_rates, node_totals

from .conftest import record, submit


def on(node: str, **kwargs):
    r = record(**kwargs)
    r.node, r.route_reason = node, "loaded"
    return r


def test_sink_counts_requests_and_errors_per_minute_and_node(services):
    now = time.time() // 60 * 60 + 30
    submit(services, on("gpu-a", started_wall=now), on("gpu-a", started_wall=now, status=503, error="busy"),
           on("gpu-b", started_wall=now - 60), record(started_wall=now))  # the last one has no node
    with services.session_factory() as session:
        minutes = {(m.bucket, m.node): (m.requests, m.errors)
                   for m in session.execute(select(StatsNodeMinute)).scalars()}
        totals = node_totals(session)
        rates = node_rates(session, now=now)
    assert minutes == {(int(now // 60 * 60), "gpu-a"): (2, 1), (int(now // 60 * 60) - 60, "gpu-b"): (1, 0)}
    assert {n: (t["requests"], t["errors"], t["last_error"]) for n, t in totals.items()} == {
        "gpu-a": (2, 1, "busy"), "gpu-b": (1, 0, None)}
    assert rates == {"gpu-a": {"requests_per_min": 0.4, "errors_per_min": 0.2},
                     "gpu-b": {"requests_per_min": 0.2, "errors_per_min": 0.0}}


def test_totals_add_up_across_workers_and_keep_the_newest_error(services):
    other_worker = NodeStatsSink()
    now = time.time()
    submit(services, on("gpu-a", started_wall=now - 5, status=500, error="older"))
    with services.session_factory.begin() as session:
        other_worker.write(session, [on("gpu-a", started_wall=now, status=404, error=None),
                                     on("gpu-a", started_wall=now - 10, status=502, error="oldest")])
    with services.session_factory() as session:
        total = node_totals(session)["gpu-a"]
    assert (total["requests"], total["errors"]) == (3, 3)
    assert total["last_error"] == "HTTP 404 on /api/chat" and total["last_error_at"] == now


def test_counters_are_64_bit(services):
    with services.session_factory.begin() as session:
        session.add(StatsNodeTotal(node="gpu-a", requests=2**40, errors=2**33))
    submit(services, on("gpu-a", status=500))
    with services.session_factory() as session:
        total = node_totals(session)["gpu-a"]
    assert (total["requests"], total["errors"]) == (2**40 + 1, 2**33 + 1)


def test_minutes_older_than_two_days_are_pruned_but_totals_stay(services):
    submit(services, on("gpu-a", started_wall=time.time() - 3 * 86400), on("gpu-a"))
    with services.session_factory() as session:
        assert len(session.execute(select(StatsNodeMinute)).scalars().all()) == 1
        assert node_totals(session)["gpu-a"]["requests"] == 2


def _samples(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_per_node(client, services, fleet):
    fleet(None)
    submit(services, on("ollama.test:11434"), on("ollama.test:11434", status=502, error="refused"))
    samples = _samples(client)
    node = (("node", "ollama.test:11434"),)
    assert samples[("intelliproxy_node_requests_total", node)] == 2
    assert samples[("intelliproxy_node_request_errors_total", node)] == 1
    assert ("intelliproxy_node_up", node) not in samples  # no routing engine: no live gauges
    fleet({1: {"state": "up", "in_flight": 3, "waiting": 2, "loads_observed": 5}})
    samples = _samples(client)
    assert (samples[("intelliproxy_node_up", node)], samples[("intelliproxy_node_in_flight", node)],
            samples[("intelliproxy_node_waiting", node)], samples[("intelliproxy_node_model_loads_total", node)]) == (
        1, 3, 2, 5)
    fleet({1: {"state": "down"}})
    assert _samples(client)[("intelliproxy_node_up", node)] == 0


def test_node_upserts_lock_rows_in_primary_key_order(services):
    """Two workers flushing overlapping batches must take row locks in one order (else PostgreSQL deadlocks)."""
    from sqlalchemy import event

    seen = []

    def capture(conn, clause, multiparams, params, execution_options):
        table = getattr(clause, "table", None)
        if getattr(clause, "is_insert", False) and table is not None and table.name.startswith("stats_node"):
            seen.append((table.name, list(multiparams)))

    now = time.time() // 60 * 60 + 30
    event.listen(services.engine, "before_execute", capture)
    try:
        submit(services, *[on(node, started_wall=now + minute) for node in ("zeta", "alpha", "mid")
                           for minute in (0, -120, -60)])
    finally:
        event.remove(services.engine, "before_execute", capture)
    keys = {"stats_node_minute": ("bucket", "node"), "stats_node_total": ("node",)}
    assert {table for table, _ in seen} == set(keys)
    for table, rows in seen:
        order = [tuple(row[k] for k in keys[table]) for row in rows]
        assert order == sorted(order) and len(order) == (9 if table == "stats_node_minute" else 3)
