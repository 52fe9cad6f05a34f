"""`python -m app.migrate`: bring the database to the latest schema and seed the config on first start.

gunicorn.conf.py runs this once in a child process before the workers start, so the master stays small and
workers never race; `./run.sh` and the Docker entrypoint rely on the same path.
"""
from __future__ import annotations

import logging

from .config import load_settings
from .config_store import seed_config
from .db import make_engine, make_session_factory, migration_lock, upgrade_database


def migrate_and_seed(settings: dict) -> None:
    upgrade_database(settings["DATABASE_URL"])
    engine = make_engine(settings["DATABASE_URL"])
    try:
        with migration_lock(settings["DATABASE_URL"]), make_session_factory(engine).begin() as session:
            seed_config(session, settings)
    finally:
        engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    migrate_and_seed(load_settings())


if __name__ == "__main__":
    main()
