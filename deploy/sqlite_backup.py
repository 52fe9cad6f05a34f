"""Consistent online backup of the IntelliProxy SQLite database, safe while the proxy runs.

    python deploy/sqlite_backup.py DEST [--db PATH]

The database runs in WAL mode: recent commits live in `intelliproxy.db-wal` until a checkpoint, so copying the
`.db` file alone (cp, rsync, a volume snapshot of just that file) can give an old or corrupt copy. This uses
SQLite's online backup API instead, which reads a consistent snapshot while the workers keep writing, then
checks the copy with `PRAGMA integrity_check`. DEST is a single self-contained file (no -wal beside it).

Standard library only, so it runs inside the slim image:
    docker compose exec intelliproxy python deploy/sqlite_backup.py /data/backup-$(date +%F).db
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path


def database_path(url: str) -> Path:
    """The file behind a `sqlite:///relative` or `sqlite:////absolute` URL (what DATABASE_URL holds)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise SystemExit(f"not a SQLite database URL: {url!r}")
    return Path(url[len(prefix):].split("?", 1)[0])


def backup(source: Path, dest: Path) -> int:
    """Copy `source` to `dest` with the backup API; return the size of the copy in bytes."""
    if not source.is_file():
        raise SystemExit(f"no database at {source}")
    if dest.exists():
        raise SystemExit(f"{dest} exists; choose a new file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        out = sqlite3.connect(partial)
        try:
            src.backup(out, pages=1024)  # in steps, so writers are never blocked for long
            out.execute("PRAGMA journal_mode=DELETE")  # the copy is one file, no -wal needed to read it
            result = out.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            out.close()
    finally:
        src.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise SystemExit(f"integrity check of the copy failed: {result}")
    os.replace(partial, dest)
    return dest.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="the backup file to write (must not exist)")
    parser.add_argument("--db", type=Path, help="the database file (default: from DATABASE_URL)")
    args = parser.parse_args(argv)
    source = args.db or database_path(os.environ.get("DATABASE_URL", "sqlite:////data/intelliproxy.db"))
    size = backup(source, args.dest)
    print(f"backed up {source} to {args.dest} ({size} bytes, integrity ok)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
