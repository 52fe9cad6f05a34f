"""The statistics sink and its queries, the JSON twins (/stats, /requests, /requests/clear) and /metrics."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from app.models import StatsMinute, StatsTotal
from app.telemetry import stats
from app.telemetry.stats import Aggregate, StatsSink, latency_slot

from .conftest import record, submit


def test_sink_aggregates_per_minute_model_and_backend(services):
    now = time.time()
    submit(services, record(model="llama3", duration_ms=100, started_wall=now),
           record(model="llama3:latest", duration_ms=300, started_wall=now, status=500, error="x"),
           record(model="llama3", backend="airllm", started_wall=now),
           record(model="llama3", started_wall=now - 3600))
    with services.session_factory() as session:
        totals = {(r.model, r.backend): r for r in session.execute(select(StatsTotal)).scalars()}
        minutes = session.execute(select(func.count()).select_from(StatsMinute)).scalar()
    assert set(totals) == {("llama3:latest", "ollama"), ("llama3:latest", "airllm")}
    row = totals[("llama3:latest", "ollama")]
    assert (row.requests, row.errors, row.eval_tokens, row.timed_eval_tokens) == (3, 1, 120, 120)
    assert minutes == 3


def test_counters_add_up_across_flushes_and_workers(services):
    """Two sinks (two workers) writing at once add to the same rows."""
    other = StatsSink()
    now = time.time()
    batches = [[record(started_wall=now, duration_ms=50) for _ in range(20)] for _ in range(10)]

    def worker(sink, batch_list):
        for batch in batch_list:
            with services.session_factory.begin() as session:
                sink.write(session, batch)

    threads = [threading.Thread(target=worker, args=(s, batches[i::2])) for i, s in enumerate((StatsSink(), other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with services.session_factory() as session:
        assert stats.totals(session)["requests"] == 200
        assert stats.per_model(session, "hour")[0].stats.requests == 200


def test_percentile_is_estimated_from_the_histogram():
    agg = Aggregate()
    for ms in range(1, 101):  # 1..100 ms
        row = {"requests": 1, "duration_ms_sum": ms, "duration_ms_max": ms,
               f"lat_{latency_slot(ms):02d}": 1}
        agg.add(row)
    assert agg.mean_ms == pytest.approx(50.5)
    assert 90 <= agg.p95_ms <= 100
    single = Aggregate().add({"requests": 1, "duration_ms_sum": 3.0, "duration_ms_max": 3.0, "lat_00": 1})
    assert single.p95_ms == 3.0  # one sample's p95 is that sample, never above the max seen
    assert Aggregate().p95_ms is None


def test_ttft_counts_streamed_successes_and_tokens_per_second(services):
    submit(services, record(ttfb_ms=40, eval_count=100, eval_duration_ns=2_000_000_000),
           record(ttfb_ms=60, eval_count=100, eval_duration_ns=2_000_000_000),
           record(ttfb_ms=900, streamed=False, eval_count=10, eval_duration_ns=None),
           record(ttfb_ms=5, status=502))
    with services.session_factory() as session:
        item = stats.per_model(session)[0].stats
    assert item.ttft_ms == pytest.approx(50.0)
    assert item.tokens_per_s == pytest.approx(50.0) and item.eval_tokens == 100 + 100 + 10 + 40  # tokens count even without a duration


def test_series_has_a_point_per_minute_with_zeros_when_idle(services):
    now = time.time()
    submit(services, record(started_wall=now), record(started_wall=now - 600), record(started_wall=now - 600))
    with services.session_factory() as session:
        hour = stats.series(session, "hour", now=now)
        day = stats.series(session, "day", now=now)
        one_model = stats.series(session, "hour", model="nothing", now=now)
    assert len(hour["points"]["t"]) == 60 and sum(hour["points"]["requests"]) == 3
    assert hour["points"]["requests"][-1] == 1 and max(hour["points"]["requests"]) == 2
    assert 96 <= len(day["points"]["t"]) <= 97 and sum(day["points"]["requests"]) == 3
    assert sum(one_model["points"]["requests"]) == 0


def test_old_minutes_are_pruned_but_totals_stay(services):
    [sink] = [s for s in services.recorder.sinks if isinstance(s, StatsSink)]
    submit(services, record(started_wall=time.time() - 3 * 86400))
    sink._next_prune = 0
    submit(services, record())
    with services.session_factory() as session:
        assert session.execute(select(func.count()).select_from(StatsMinute)).scalar() == 1
        assert stats.totals(session)["requests"] == 2


# -- JSON twins -----------------------------------------------------------------------------------------------

def test_stats_json(client, services):
    submit(services, record(duration_ms=100), record(model=None, endpoint="/api/tags", eval_count=None))
    body = client.get("/stats").get_json()
    assert body["totals"]["requests"] == 2 and body["totals"]["tokens_generated"] == 40
    models = {(m["model"], m["backend"]): m for m in body["models"]}
    assert models[("llama3.2:1b", "ollama")]["mean_ms"] == 100.0
    assert (None, "ollama") in models
    series = client.get("/stats?range=hour&series=1").get_json()["series"]
    assert series["step_s"] == 60 and sum(series["points"]["requests"]) == 2
    assert client.get("/stats?range=week").status_code == 400


def test_requests_json_filters_and_limit(client, services):
    submit(services, *[record(model=f"m{i}:1b", status=200 if i % 2 else 404) for i in range(6)])
    body = client.get("/requests").get_json()
    assert body["count"] == 6 and body["requests"][0]["model"] == "m5:1b"  # newest first
    assert body["requests"][0]["time"].endswith("+00:00")
    assert [r["model"] for r in client.get("/requests?status=4xx&limit=2").get_json()["requests"]] == ["m4:1b",
                                                                                                       "m2:1b"]
    assert client.get("/requests?model=m3").get_json()["count"] == 1
    assert client.get("/requests?backend=airllm").get_json()["count"] == 0
    assert client.get("/requests?status=teapot").status_code == 400
    assert client.get("/requests?limit=-1").status_code == 400


@pytest.mark.parametrize("query, field", [("limit=²", "limit"), ("status=²", "status"), ("limit=٣", "limit"),
                                          ("status=٥٠٠", "status")])
def test_requests_refuses_unicode_digits_with_400(client, services, query, field):
    """`"²".isdigit()` is true and int("²") fails: a 400 naming the field, never a 500."""
    response = client.get(f"/requests?{query}")
    assert response.status_code == 400 and response.get_json()["field"] == field


def test_requests_json_carries_the_virtual_models_choice(client, services):
    """Scripts see IntelliProxyLLM's decisions: the model asked for and the request's category."""
    chosen = record(model="qwen2.5-coder:7b")
    chosen.requested_model, chosen.category = "IntelliProxyLLM", "code"
    submit(services, record(model="llama3.2:1b"), chosen)
    rows = client.get("/requests").get_json()["requests"]
    assert (rows[0]["model"], rows[0]["requested_model"], rows[0]["category"]) == \
        ("qwen2.5-coder:7b", "IntelliProxyLLM", "code")
    assert (rows[1]["requested_model"], rows[1]["category"]) == (None, None)


def test_requests_json_carries_and_filters_the_node(client, services):
    chosen, unrouted = record(), record(model="qwen2.5-coder:7b")
    chosen.node, chosen.route_reason = "gpu-a", "fits"
    submit(services, chosen, unrouted)
    rows = client.get("/requests?node=gpu-a").get_json()["requests"]
    assert [(r["model"], r["node"], r["route_reason"]) for r in rows] == [("llama3.2:1b", "gpu-a", "fits")]
    assert client.get("/requests").get_json()["requests"][0]["node"] is None


def test_requests_clear_json(client, services):
    submit(services, record(), record())
    assert client.post("/requests/clear").get_json() == {"status": "ok", "deleted": 2}
    assert client.get("/requests").get_json()["count"] == 0
    assert client.get("/stats").get_json()["totals"]["requests"] == 2


# -- /metrics -------------------------------------------------------------------------------------------------

def test_metrics_in_prometheus_text_format(client, services):
    from prometheus_client.parser import text_string_to_metric_families

    submit(services, record(duration_ms=30), record(duration_ms=700, status=500, error="x"),
           record(model="big:70b", backend="airllm", duration_ms=5000))
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    key = (("backend", "ollama"), ("model", "llama3.2:1b"))
    assert samples[("intelliproxy_requests_total", key)] == 2
    assert samples[("intelliproxy_request_errors_total", key)] == 1
    assert samples[("intelliproxy_tokens_generated_total", key)] == 80
    assert samples[("intelliproxy_request_duration_seconds_count", key)] == 2
    bucket = "intelliproxy_request_duration_seconds_bucket"
    assert samples[(bucket, tuple(sorted(key + (("le", "0.05"),))))] == 1
    assert samples[(bucket, tuple(sorted(key + (("le", "1"),))))] == 2
    assert samples[(bucket, tuple(sorted(key + (("le", "+Inf"),))))] == 2
    assert abs(samples[("intelliproxy_request_duration_seconds_sum", key)] - 0.73) < 0.01
    assert samples[("intelliproxy_requests_total", (("backend", "airllm"), ("model", "big:70b")))] == 1
    assert samples[("intelliproxy_backend_up", (("backend", "ollama"),))] == 0  # nothing at ollama.test
    assert "intelliproxy_airllm_enabled" in families


def test_metrics_count_records_set_aside_after_failing_on_their_own(client, services):
    from app.telemetry.recorder import MAX_ATTEMPTS

    poison = record(eval_count=10, eval_duration_ns=2 ** 63)  # no 64-bit column holds it
    services.recorder.submit(poison)
    for _ in range(MAX_ATTEMPTS):
        services.recorder.flush()
    submit(services, record())  # the others are still written
    text = client.get("/metrics").get_data(as_text=True)
    assert 'intelliproxy_telemetry_records_dropped_total{reason="unwritable"} 1.0' in text
    assert 'intelliproxy_telemetry_records_dropped_total{reason="overflow"} 0.0' in text
    assert client.get("/stats").get_json()["totals"]["requests"] == 1


def test_metrics_report_the_airllm_queue_from_the_health_report(client, services, monkeypatch):
    report = {"ollama": {"reachable": True, "rtt_ms": 2.0},
              "airllm": {"enabled": True, "reachable": True, "rtt_ms": 3.0,
                         "details": {"queue": {"depth": 4, "running": {"model": "big"}}}}}
    monkeypatch.setattr(services.health, "report", lambda: report)
    text = client.get("/metrics").get_data(as_text=True)
    assert "intelliproxy_airllm_queue_depth 4.0" in text
    assert "intelliproxy_airllm_queue_running 1.0" in text
    assert 'intelliproxy_backend_up{backend="airllm"} 1.0' in text


@pytest.fixture
def upserted(services):
    """(table, [row keys]) of each batched upsert the flush runs, in execution order."""
    from sqlalchemy import event

    seen = []

    def capture(conn, clause, multiparams, params, execution_options):
        table = getattr(clause, "table", None)
        if getattr(clause, "is_insert", False) and multiparams and isinstance(multiparams[0], dict):
            seen.append((table.name, list(multiparams)))

    event.listen(services.engine, "before_execute", capture)
    yield seen
    event.remove(services.engine, "before_execute", capture)


def test_upserts_lock_rows_in_primary_key_order(services, upserted):
    """Two workers flushing overlapping batches must take row locks in one order (else PostgreSQL deadlocks)."""
    now = time.time() // 60 * 60 + 30
    batch = []
    for model in ("zeta:1b", "alpha:1b", "mid:1b"):
        for backend in ("ollama", "airllm"):
            for minute in (0, -120, -60):
                r = record(model=model, backend=backend, started_wall=now + minute)
                r.requested_model, r.category = "IntelliProxyLLM", "code" if model != "mid:1b" else "general"
                batch.append(r)
    submit(services, *batch)
    keys = {"stats_minute": ("bucket", "model", "backend"), "stats_total": ("model", "backend"),
            "intelli_category_counts": ("day", "category", "model")}
    upserts = [(table, rows) for table, rows in upserted if table in keys]
    assert {table for table, _ in upserts} == set(keys)
    for table, rows in upserts:
        order = [tuple(row[k] for k in keys[table]) for row in rows]
        assert len(order) > 1 and order == sorted(order), table


def test_category_counts_add_up_across_flushes_and_workers(services):
    """The category sink uses the same upsert: two sinks writing at once add to the same rows."""
    from app.intelli.stats import CategoryStatsSink, category_distribution

    now = time.time()

    def batch(category, model, n):
        out = [record(model=model, started_wall=now) for _ in range(n)]
        for r in out:
            r.requested_model, r.category = "IntelliProxyLLM", category
        return out

    batches = [batch("code", "qwen2.5-coder:7b", 5) + batch("general", "llama3.2:3b", 3) for _ in range(10)]

    def worker(sink, batch_list):
        for b in batch_list:
            with services.session_factory.begin() as session:
                sink.write(session, b)

    threads = [threading.Thread(target=worker, args=(CategoryStatsSink(), batches[i::2])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    submit(services, *batch("code", "qwen2.5-coder:7b", 2), record(model="llama3.2:3b", started_wall=now))
    with services.session_factory() as session:
        found = category_distribution(session)
    assert found["total"] == 82
    per = {c["category"]: c for c in found["categories"]}
    assert per["code"]["models"] == [{"model": "qwen2.5-coder:7b", "requests": 52}]
    assert per["general"]["requests"] == 30
