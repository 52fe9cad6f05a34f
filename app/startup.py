"""What a person who starts the proxy is told: where to click, and whether Ollama answered.

gunicorn.conf.py's `when_ready` logs `urls_line()` from the master and starts `python -m app.startup` beside it,
which logs one line per environment value the stored config does not use (app.env_drift), then probes the stored
Ollama target once (within health.PROBE_TIMEOUT) and logs the answer in /health's words. It runs once per start
(the Docker entrypoint's extra migration run says nothing), no worker waits for it, and the master imports nothing
heavy for it.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"  # gunicorn's own line format
LOG_DATE = "%Y-%m-%d %H:%M:%S %z"


def browser_host(bind_host: str) -> str:
    """The host a browser on this machine opens for a bind address (0.0.0.0 and :: mean every address)."""
    host = bind_host.strip().strip("[]")
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def urls_line(settings: dict) -> str:
    """`Dashboard: http://127.0.0.1:9999 · Proxy: http://127.0.0.1:9998`: one line a person can click."""
    host = browser_host(settings["HOST"])
    return f"Dashboard: http://{host}:{settings['DASHBOARD_PORT']} · Proxy: http://{host}:{settings['PROXY_PORT']}"


def ollama_line(report: dict) -> str:
    """One probe of the Ollama target (health.probe_backend's result), for a person."""
    if report["reachable"]:
        return f"Ollama answered at {report['url']} (version {report['version']}, {report['rtt_ms']:g} ms)"
    return f"Ollama did not answer: {report['error']} (the proxy runs anyway; /health shows when it answers)"


def main() -> None:
    """Report environment drift, probe the stored Ollama target once, log what happened; never fails the start."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE)
    from .config import load_settings
    from .config_store import load_routing_table
    from .db import make_engine, make_session_factory
    from .env_drift import drift
    from .health import PROBE_TIMEOUT, probe_backend
    from .proxy.upstream import UpstreamClient

    settings = load_settings()
    engine = make_engine(settings["DATABASE_URL"])
    try:
        with make_session_factory(engine)() as session:
            table = load_routing_table(session)
    except Exception as exc:  # the workers report database trouble themselves; this line is only a courtesy
        log.warning("Ollama not probed: cannot read the stored target (%s)", exc)
        return
    finally:
        engine.dispose()
    for item in drift(settings, table):
        log.warning("%s", item.describe())
    report = probe_backend(UpstreamClient(connect_timeout=PROBE_TIMEOUT), table.ollama, PROBE_TIMEOUT)
    (log.info if report["reachable"] else log.warning)("%s", ollama_line(report))


if __name__ == "__main__":
    main()
