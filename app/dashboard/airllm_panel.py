"""The AirLLM page: the AirLLM server's own /api/queue, fetched through the proxy's pooled client, refreshed live.

It shows the resident model, the module being swept and the step rate, the running batch and the waiting line with
positions and ETAs. It never imports the AirLLM server's code (or torch): it only reads its JSON.
"""
from __future__ import annotations

import json

from flask import Blueprint

from ..proxy.upstream import UpstreamError
from .context import render_page_or_fragment, services

bp = Blueprint("airllm_panel", __name__)
QUEUE_TIMEOUT_S = 2.0       # the page refreshes every 2 s: an answer later than that is no use
REFRESH = "every 2s"


def fetch_queue(client, backend, timeout: float = QUEUE_TIMEOUT_S) -> tuple[dict | None, str | None]:
    """(the /api/queue document, None) or (None, why it could not be read)."""
    try:
        response = client.request("GET", backend.host, backend.port, "/api/queue", [("accept", "application/json")],
                                  read_timeout=timeout, connect_timeout=min(timeout, 1.0))
        raw = response.read()
    except (UpstreamError, OSError) as exc:
        return None, f"cannot connect to {backend.url}: {exc}"
    if response.status == 404:
        return None, f"{backend.url} has no /api/queue (an older AirLLM server, or not one at all)"
    if response.status != 200:
        return None, f"HTTP {response.status} from {backend.url}/api/queue"
    try:
        document = json.loads(raw)
    except ValueError:
        return None, f"{backend.url}/api/queue did not answer with JSON"
    return (document, None) if isinstance(document, dict) else (None, f"{backend.url}/api/queue: unexpected answer")


@bp.get("/airllm")
def page():
    """The AirLLM panel; its queue part is also the fragment htmx swaps in every 2 seconds."""
    svc = services()
    table = svc.watcher.table
    queue, error = fetch_queue(svc.client, table.airllm) if table.airllm_enabled else (None, None)
    return render_page_or_fragment("dashboard/airllm.html", "dashboard/_airllm_queue.html", queue=queue,
                                   error=error, backend=table.airllm, enabled=table.airllm_enabled, refresh=REFRESH)
