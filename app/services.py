"""The long-lived objects one worker shares between its proxy face and its dashboard face."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker


@dataclass
class Services:
    settings: dict
    engine: Engine
    session_factory: sessionmaker
    watcher: object  # config_store.ConfigWatcher
    recorder: object  # telemetry.recorder.Recorder
    health: object  # health.HealthChecker
    client: object  # proxy.upstream.UpstreamClient
    extras: dict = field(default_factory=dict)
