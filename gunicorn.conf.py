"""gunicorn settings: gevent workers serving the proxy port and the dashboard port.

`gunicorn -c gunicorn.conf.py wsgi:app` starts the product. Environment: HOST (0.0.0.0), PROXY_PORT (9998),
DASHBOARD_PORT (9999), WEB_CONCURRENCY (workers; default: half the CPU cores, at least one).
"""
import multiprocessing
import os
import subprocess
import sys

_host = os.environ.get("HOST", "0.0.0.0")
_host = f"[{_host}]" if ":" in _host and not _host.startswith("[") else _host

bind = [f"{_host}:{os.environ.get('PROXY_PORT', '9998')}", f"{_host}:{os.environ.get('DASHBOARD_PORT', '9999')}"]
# gevent_pywsgi: gunicorn's gevent worker on gevent's own HTTP server. Measured in development: 164 µs of
# server CPU per proxied request against 246 µs with the plain "gevent" worker.
# Streams need an async worker either way: one greenlet per connection.
# app.proxy.server.ProxyWorker is that worker with client timeouts (CLIENT_HEADER_TIMEOUT_S, CLIENT_BODY_TIMEOUT_S,
# KEEPALIVE_SECONDS for idle connections), which gevent's server does not have.
worker_class = "app.proxy.server.ProxyWorker"
# Default: half the cores, at least one. The proxy usually shares its host with Ollama, which needs the CPU more,
# and one gevent worker already relays thousands of concurrent streams: on the 2-core benchmark machine one
# worker opened 300 streams as fast as two (S5 TTFC p99 94 ms either way) in 94 MB instead of 148 MB.
workers = int(os.environ.get("WEB_CONCURRENCY") or max(1, multiprocessing.cpu_count() // 2))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
# gevent workers heartbeat from their own greenlet, so this never kills a long stream; it only catches a
# worker whose event loop is truly stuck.
timeout = 120
graceful_timeout = 30
keepalive = int(os.environ.get("KEEPALIVE_SECONDS", "75"))
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
control_socket_disable = True  # several instances (tests, replicas) must not fight over one socket path
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def on_starting(server):
    """Migrate and seed once, in a child process (keeps the master small), before any worker starts."""
    subprocess.run([sys.executable, "-m", "app.migrate"], check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    from app.config import load_settings

    os.environ["INTELLIPROXY_MIGRATED"] = load_settings()["DATABASE_URL"]
    from app.fleet import board

    board.prepare()  # the workers' shared in-flight counters: made before the fork, so every worker sees them


def when_ready(server):
    """Tell whoever started us where to click, then whether Ollama answered: probed by a child process
    (app.startup, at most ~1.5 s), so no worker waits for it."""
    from app.config import load_settings
    from app.startup import urls_line

    server.log.info("%s", urls_line(load_settings()))
    subprocess.Popen([sys.executable, "-m", "app.startup"], cwd=os.path.dirname(os.path.abspath(__file__)))


def worker_exit(server, worker):
    """Write the request records still queued in memory before the worker goes away."""
    services = getattr(getattr(worker, "wsgi", None), "services", None)
    if services is not None:
        services.recorder.stop()
        services.watcher.stop()
        fleet = services.extras.get("fleet")
        if fleet is not None:
            fleet.stop()
            fleet.board.release_row()
