"""`python -m app.migrate`: bring the database to the latest schema and seed the config on first start.

gunicorn.conf.py runs this once in a child process before the workers start, so the master stays small and
workers never race; `./run.sh` and the Docker entrypoint rely on the same path.
"""
from __future__ import annotations

import logging

from .config import load_settings
from .config_store import load_routing_table, seed_config
from .db import make_engine, make_session_factory, migration_lock, upgrade_database
from .env_drift import drift


log = logging.getLogger("app.migrate")  # also when run as `python -m app.migrate`


def migrate_and_seed(settings: dict) -> None:
    """Upgrade the schema, seed the config from the environment on first start, and otherwise say (one line each)
    where the environment names a value the stored config does not use."""
    upgrade_database(settings["DATABASE_URL"])
    engine = make_engine(settings["DATABASE_URL"])
    try:
        with migration_lock(settings["DATABASE_URL"]), make_session_factory(engine).begin() as session:
            if not seed_config(session, settings):
                for item in drift(settings, load_routing_table(session)):
                    log.warning("%s", item.describe())
    finally:
        engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    migrate_and_seed(load_settings())


if __name__ == "__main__":
    main()
