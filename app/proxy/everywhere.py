"""Calls that go to several nodes in turn: `/api/pull` with `X-IntelliProxy-Node: all`, and `/api/delete` of a
model that more than one node has. The client gets one answer: progress streamed node by node and one final
status, or one reply that names each node's result when any failed."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..routing import normalize_model_name
from .attempts import NODE_HEADER
from .errors import error_response, json_response
from .upstream import UpstreamError


@dataclass
class Everywhere:
    raw: bytes | None
    body: dict


def run(pool, client, recorder, record, start_response, method: str, path: str, headers, plan: Everywhere):
    if path == "/api/delete":
        nodes = [v.config for v in pool.views.values()
                 if v.config.enabled and _key(plan.body) in v.listed] or [v.config for v in pool.up_views()]
        return _delete(pool, client, recorder, record, start_response, method, path, headers, plan, nodes)
    nodes = [v.config for v in pool.up_views()]
    return _pull(pool, client, recorder, record, start_response, path, headers, plan, nodes)


def _key(body: dict) -> str:
    name = body.get("model") or body.get("name") or ""
    return normalize_model_name(name) if isinstance(name, str) else ""


def _finish(recorder, record, status: int, error: str | None = None, node: str | None = None) -> None:
    record.status, record.error, record.node, record.finished = status, error, node, time.perf_counter()
    recorder.submit(record)


def _delete(pool, client, recorder, record, start_response, method, path, headers, plan, nodes):
    results = []
    for node in nodes:
        try:
            response = client.request(method, node.host, node.port, path, headers, plan.raw or b"")
            body = response.read()
            results.append((node, response.status, body))
        except UpstreamError as exc:
            results.append((node, 502, json.dumps({"error": exc.message}).encode()))
        pool.model_missing(node)  # its list changed (or should be re-read)
    names = ",".join(n.name for n in nodes)
    deleted = [n.name for n, status, _ in results if status == 200]
    failed = [(n.name, status, _message(body)) for n, status, body in results if status not in (200, 404)]
    if deleted and not failed:
        _finish(recorder, record, 200, node=names)
        start_response("200 OK", [("Content-Length", "0"), (NODE_HEADER, names)])
        return [b""]
    if not deleted and not failed:  # nobody had it: Ollama's own 404
        node, status, body = results[0]
        _finish(recorder, record, 404, _message(body), names)
        return error_response(start_response, path, 404, _message(body), [(NODE_HEADER, names)])
    summary = "; ".join(f"{name}: HTTP {status} {message}" for name, status, message in failed)
    if deleted:
        summary += f"; deleted on {', '.join(deleted)}"
    _finish(recorder, record, 502, summary, names)
    return error_response(start_response, path, 502, f"delete failed on some nodes: {summary}",
                          [(NODE_HEADER, names)])


def _message(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:200]
    return str(value.get("error", value)) if isinstance(value, dict) else str(value)


def _pull(pool, client, recorder, record, start_response, path, headers, plan, nodes):
    streaming = plan.body.get("stream", True) is not False
    upstream_body = json.dumps(dict(plan.body, stream=True)).encode()
    names = ",".join(n.name for n in nodes)

    def lines():
        failures = []
        for node in nodes:
            if streaming:
                yield json.dumps({"status": f"pulling on node {node.name}"}).encode() + b"\n"
            error = None
            try:
                response = client.request("POST", node.host, node.port, path, headers, upstream_body)
                if response.status != 200:
                    error = _message(response.read())
                else:
                    buffer = b""
                    for piece in response.iter_body():
                        buffer += piece
                        *complete, buffer = buffer.split(b"\n")
                        for line in complete:
                            error = _progress(line, error)
                            if streaming and line.strip() and not _is_success(line) and not _is_error(line):
                                yield line + b"\n"
                    if buffer.strip():
                        error = _progress(buffer, error)
            except UpstreamError as exc:
                error = exc.message
            if error:
                failures.append(f"{node.name}: {error}")
            pool.model_missing(node)
        final = {"error": "pull failed on " + "; ".join(failures)} if failures else {"status": "success"}
        _finish(recorder, record, 200 if not failures or streaming else 500, final.get("error"), names)
        yield json.dumps(final).encode() + b"\n"

    if streaming:
        start_response("200 OK", [("Content-Type", "application/x-ndjson"), (NODE_HEADER, names),
                                  ("X-Accel-Buffering", "no")])
        return lines()
    final = json.loads(b"".join(lines()).rsplit(b"\n", 2)[-2])
    if "error" in final:
        return error_response(start_response, path, 500, final["error"], [(NODE_HEADER, names)])
    return json_response(start_response, 200, final, [(NODE_HEADER, names)])


def _progress(line: bytes, error: str | None) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return error
    return str(value["error"]) if isinstance(value, dict) and value.get("error") else error


def _is_success(line: bytes) -> bool:
    return b'"success"' in line and b'"status"' in line


def _is_error(line: bytes) -> bool:
    return b'"error"' in line
