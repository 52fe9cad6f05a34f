"""Wiring for one worker: the catalog refresher, the resolver, the health listener and the category sink."""
from __future__ import annotations

from .catalog import Catalog
from .resolver import IntelliResolver
from .stats import CategoryStatsSink


def build_resolver(services) -> IntelliResolver:
    """Create and start this worker's catalog and return the resolver ProxyApp consults."""
    settings = services.settings
    catalog = Catalog(services.session_factory, services.watcher, settings.get("CATALOG_POLL_SECONDS", 5.0),
                      client=services.client)  # the proxy's pool: its own timeouts per call
    resolver = IntelliResolver(settings, catalog, services.client)
    services.recorder.add_listener(catalog.health.on_record)
    services.recorder.sinks.append(CategoryStatsSink())
    services.extras["intelli"] = resolver
    catalog.start()
    return resolver
