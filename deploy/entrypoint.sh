#!/bin/sh
# Container start for the IntelliProxy image (Dockerfile): check the data volume and ADMIN_TOKEN, apply the
# database migrations, then exec gunicorn so it is PID 1 and receives `docker stop`'s SIGTERM.
#
#   (no arguments)   migrate, then serve both ports (gunicorn -c gunicorn.conf.py wsgi:app)
#   migrate          apply the migrations and exit (e.g. `docker compose run --rm intelliproxy migrate`)
#   <command ...>    run that command instead (e.g. `python deploy/sqlite_backup.py /data/backup.db`)
set -eu

data_dir="${INTELLIPROXY_DATA_DIR:-/data}"
if [ ! -d "$data_dir" ] || [ ! -w "$data_dir" ]; then
    echo "intelliproxy: the data folder $data_dir is missing or not writable by uid $(id -u)." >&2
    echo "intelliproxy: for a bind mount, run on the host: chown -R $(id -u):$(id -g) <that folder>" >&2
    exit 1
fi

case "${ADMIN_TOKEN:-}" in
    replace-with*)
        echo "intelliproxy: ADMIN_TOKEN still holds the placeholder from .env.example; set a real one (openssl rand -hex 32)." >&2
        exit 1
        ;;
esac

case "${1:-}" in
    "")
        python -m app.migrate
        exec gunicorn -c gunicorn.conf.py wsgi:app
        ;;
    migrate)
        exec python -m app.migrate
        ;;
    *)
        exec "$@"
        ;;
esac
