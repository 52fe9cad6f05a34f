"""Model lists merged from the Ollama target and the AirLLM server (`/api/tags`, `/api/ps`, `/v1/models`)."""
from __future__ import annotations

import json
import threading

from ..routing import normalize_model_name


def merge_model_lists(primary: dict, extra: dict | None, key: str, name_field: str,
                      additions: list[dict] | None = None) -> dict:
    """Ollama's list first, then entries only the other side has (each model once), then `additions`."""
    merged = dict(primary)
    entries = list(primary.get(key) or [])
    seen = {normalize_model_name(str(e.get(name_field, ""))) for e in entries if isinstance(e, dict)}
    for entry in list((extra or {}).get(key) or []) + list(additions or []):
        if not isinstance(entry, dict):
            continue
        name = normalize_model_name(str(entry.get(name_field, "")))
        if name not in seen:
            seen.add(name)
            entries.append(entry)
    merged[key] = entries if entries or primary.get(key) is not None else primary.get(key, [])
    return merged


LISTS = {
    # path: (JSON key holding the list, field naming the model)
    "/api/tags": ("models", "model"),
    "/api/ps": ("models", "model"),
    "/v1/models": ("data", "id"),
}


def decode_list(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def fetch_lists(client, nodes, path: str, headers) -> list[tuple]:
    """GET `path` from every node at once: [(node, status, body, failure or None)] in the nodes' order."""
    from .upstream import UpstreamError

    answers: list = [None] * len(nodes)

    def fetch(index: int, node) -> None:
        try:
            response = client.request("GET", node.host, node.port, path, headers, read_timeout=10.0)
            answers[index] = (node, response.status, response.read(), None)
        except UpstreamError as exc:
            answers[index] = (node, 0, b"", exc.message)

    if len(nodes) == 1:
        fetch(0, nodes[0])
        return answers
    threads = [threading.Thread(target=fetch, args=(i, n), daemon=True) for i, n in enumerate(nodes)]
    for thread in threads:  # greenlets under gevent: the nodes answer in parallel
        thread.start()
    for thread in threads:
        thread.join()
    return answers
