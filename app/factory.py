"""Wiring: build the services of one worker, the proxy WSGI app, the dashboard Flask app, and the dispatcher."""
from __future__ import annotations

import logging
import os
import threading

from .config import load_settings
from .config_store import ConfigWatcher
from .db import make_engine, make_session_factory
from .health import HealthChecker
from .migrate import migrate_and_seed
from .ports import PortDispatcher
from .fleet.pool import Pool
from .proxy.app import ProxyApp
from .proxy.upstream import UpstreamClient
from .services import Services
from .telemetry.node_stats import NodeStatsSink
from .telemetry.recorder import Recorder
from .telemetry.sinks import RequestLogSink
from .telemetry.stats import StatsSink
from .validation import allow_link_local_targets

# Set by gunicorn.conf.py once migrations ran in the master's child process; workers then skip them.
MIGRATED_ENV = "INTELLIPROXY_MIGRATED"


class LazyDashboard:
    """Builds the dashboard's Flask app on its first request.

    A worker that only ever proxies (a replica behind a load balancer, or before anyone opens the dashboard)
    never imports Flask, Jinja and the page code: about 8 MB less per gevent worker.
    """

    def __init__(self, services: Services):
        self.services = services
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from .web import create_dashboard_app

                    self._app = create_dashboard_app(self.services)
        return self._app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def create_app(overrides: dict | None = None) -> PortDispatcher:
    """Build the app. Tests pass overrides (flaskr's test_config idea)."""
    settings = load_settings()
    settings.update(overrides or {})
    allow_link_local_targets(settings["ALLOW_LINK_LOCAL_TARGETS"])
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get(MIGRATED_ENV) != settings["DATABASE_URL"]:
        migrate_and_seed(settings)

    engine = make_engine(settings["DATABASE_URL"])
    session_factory = make_session_factory(engine)
    watcher = ConfigWatcher(session_factory, settings["CONFIG_POLL_SECONDS"])
    recorder = Recorder(session_factory, [RequestLogSink(settings["LOG_RETENTION"], settings["STORE_PROMPTS"]),
                                          StatsSink(), NodeStatsSink()],
                        settings["TELEMETRY_FLUSH_SECONDS"])
    services = Services(
        settings=settings, engine=engine, session_factory=session_factory, watcher=watcher, recorder=recorder,
        health=None,
        client=UpstreamClient(settings["CONNECT_TIMEOUT"], settings["REQUEST_TIMEOUT"]),
    )
    services.health = HealthChecker(watcher, services.client, settings["HEALTH_CACHE_SECONDS"])
    from .intelli.setup import build_resolver

    resolver = build_resolver(services)
    # NODE_PROBES=False (tests that build the app in-process) leaves the nodes unprobed: no traffic to made-up hosts
    pool = Pool(settings, services.client, watcher=watcher, probe=settings.get("NODE_PROBES", True))
    pool.sync(watcher.table)
    services.extras["fleet"] = pool
    services.health.fleet = pool
    proxy_app = ProxyApp(settings, watcher, services.client, recorder, services.health, resolver, pool)
    dashboard_app = LazyDashboard(services)
    watcher.start()
    recorder.start()
    app = PortDispatcher(proxy_app, dashboard_app, settings["PROXY_PORT"], settings["DASHBOARD_PORT"], services)
    if settings["TRUSTED_PROXY_HOPS"] > 0:
        from .forwarded import TrustedProxyFix

        # X-Forwarded-For/-Proto count only from FORWARDED_ALLOW_IPS, and only that many hops of them.
        hops, allowed = settings["TRUSTED_PROXY_HOPS"], settings["FORWARDED_ALLOW_IPS"]
        app.proxy_app = TrustedProxyFix(proxy_app, hops, allowed)
        app.dashboard_app = TrustedProxyFix(dashboard_app, hops, allowed)
    return app
