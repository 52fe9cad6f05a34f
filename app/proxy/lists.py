"""`/api/tags`, `/api/ps` and `/v1/models` merged over the pool's up nodes, the AirLLM server and the virtual model."""
from __future__ import annotations

import json
import logging
import time

from ..telemetry.records import RequestRecord
from .attempts import NODE_HEADER
from .catalog import LISTS, decode_list, fetch_lists, merge_model_lists
from .errors import status_line as failure_status_line
from .inbound import client_address, forward_headers
from .upstream import UpstreamError

log = logging.getLogger(__name__)


def merged_list(app, environ, start_response, path: str):
    """`/api/tags`, `/api/ps`, `/v1/models`: every up node's list (each model once; `/api/ps` an entry per node
    and model), plus the AirLLM server's and the virtual model."""
    table = app.watcher.table
    app.pool.sync(table)
    record = RequestRecord(method="GET", endpoint=path, client=client_address(environ))
    headers = forward_headers(environ, drop_authorization=bool(app.api_keys))
    nodes = [view.config for view in app.pool.up_views()]
    answers = fetch_lists(app.client, nodes, path, headers) if nodes else []
    lists = [(node, decode_list(raw)) for node, status, raw, _ in answers if status == 200]
    lists = [(node, value) for node, value in lists if value is not None]
    if not lists:
        if not answers:
            return app._fail(start_response, record, path, 502, "no Ollama node is configured")
        node, status, raw, failure = answers[0]
        if failure is not None:
            message = f"cannot reach Ollama at {node.backend.url}: {failure}" if len(answers) == 1 else \
                "every Ollama node failed: " + "; ".join(f"{n.name}: {f or f'HTTP {s}'}"
                                                         for n, s, _, f in answers)
            return app._fail(start_response, record, path, 502, message)
        # an error or something unexpected: pass the node's answer through untouched
        record.status, record.finished, record.node = status, time.perf_counter(), node.name
        app.recorder.submit(record)
        start_response(failure_status_line(status), [("Content-Type", "application/json; charset=utf-8"),
                                                      ("Content-Length", str(len(raw))),
                                                      ("X-IntelliProxy-Backend", "ollama"),
                                                      (NODE_HEADER, node.name)])
        return [raw]
    key, name_field = LISTS[path]
    primary = lists[0][1]
    for _, other in lists[1:]:
        if path == "/api/ps":  # the same model loaded on two nodes is two entries
            primary = dict(primary, **{key: list(primary.get(key) or []) + list(other.get(key) or [])})
        else:
            primary = merge_model_lists(primary, other, key, name_field)
    record.node = ",".join(node.name for node, _ in lists)
    key, name_field = LISTS[path]
    extra = _airllm_list(app, table, path, headers) if table.airllm_enabled else None
    additions = app.resolver.list_entries(path) if app.resolver is not None else None
    merged = merge_model_lists(primary, extra, key, name_field, additions)
    record.status, record.finished = 200, time.perf_counter()
    app.recorder.submit(record)
    body = json.dumps(merged).encode()
    start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                              ("Content-Length", str(len(body))),
                              ("X-IntelliProxy-Backend", "ollama+airllm" if extra else "ollama"),
                              (NODE_HEADER, record.node)])
    return [body]

def _airllm_list(app, table, path: str, headers) -> dict | None:
    """The AirLLM server's list, or None when it is down (its part is then left out)."""
    try:
        upstream = app.client.request("GET", table.airllm.host, table.airllm.port, path, headers,
                                       read_timeout=5.0, connect_timeout=2.0)
        raw = upstream.read()
    except UpstreamError as exc:
        log.info("AirLLM server at %s left out of %s: %s", table.airllm.url, path, exc.message)
        return None
    return decode_list(raw) if upstream.status == 200 else None

