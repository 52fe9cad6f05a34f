#!/usr/bin/env bash
# Start Ollama IntelliProxy: proxy on $PROXY_PORT (9998), dashboard on $DASHBOARD_PORT (9999).
# Creates .venv on first use, installs requirements.txt when it changed, then runs gunicorn, which applies
# database migrations once before its workers start. Works with no Ollama running (health says so).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$wanted" > "$stamp"
fi

exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
