# syntax=docker/dockerfile:1
# Ollama IntelliProxy: the proxy (9998) and the dashboard (9999) under gunicorn + gevent.
# Only requirements.txt is installed: no torch, no airllm (the AirLLM server has Dockerfile.airllm).
#
#   docker build -t intelliproxy .
#   docker run -d -p 9998:9998 -p 127.0.0.1:9999:9999 -v intelliproxy-data:/data \
#       -e OLLAMA_HOST=http://ollama-host:11434 -e ADMIN_TOKEN=... intelliproxy
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid so bind-mounted data folders can be chowned to it (chown 10001:10001 <folder>).
RUN groupadd --system --gid 10001 intelliproxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin intelliproxy

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The code belongs to root and is read-only for the service user; only /data is writable.
COPY alembic.ini gunicorn.conf.py wsgi.py ./
COPY migrations ./migrations
COPY app ./app
COPY templates ./templates
COPY static ./static
COPY deploy/entrypoint.sh deploy/sqlite_backup.py ./deploy/
RUN python -m compileall -q app migrations \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

ENV INTELLIPROXY_DATA_DIR=/data \
    DATABASE_URL=sqlite:////data/intelliproxy.db \
    HOST=0.0.0.0 \
    PROXY_PORT=9998 \
    DASHBOARD_PORT=9999
VOLUME ["/data"]
EXPOSE 9998 9999

USER 10001:10001

# /health on the proxy port answers 200 while the server runs (backend state is in the body); it stays open
# when PROXY_API_KEYS is set. Python instead of curl: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('PROXY_PORT') or '9998'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]

# Migrations (python -m app.migrate), then exec gunicorn -c gunicorn.conf.py wsgi:app; see deploy/entrypoint.sh.
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
