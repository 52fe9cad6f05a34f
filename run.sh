#!/usr/bin/env bash
# Start Ollama IntelliProxy: proxy on $PROXY_PORT (9998), dashboard on $DASHBOARD_PORT (9999).
# Reads .env when there is one (KEY=value lines, as docker compose does; a variable already set in the
# environment wins). Creates .venv on first use, installs requirements.txt when it changed, then runs gunicorn,
# which applies database migrations once before its workers start and prints the dashboard's address.
# Works with no Ollama running (it says so, and /health too).
set -euo pipefail
cd "$(dirname "$0")"

if [ -f .env ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"          # leading blanks
    case "$line" in ''|'#'*) continue ;; esac
    line="${line#export }"
    key="${line%%=*}"
    value="${line#*=}"
    [[ "$line" == *=* && "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "run.sh: .env: ignoring '$line'" >&2; continue; }
    value="${value%"${value##*[![:space:]]}"}"         # trailing blanks
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    else
      value="${value%%[[:space:]]#*}"                   # an unquoted value ends at " #comment"
      value="${value%"${value##*[![:space:]]}"}"
    fi
    [ -n "${!key+set}" ] || export "$key=$value"
  done < .env
fi
case "${ADMIN_TOKEN:-}" in
  replace-with*)
    echo "run.sh: ADMIN_TOKEN still holds the placeholder from .env.example; set a real one (openssl rand -hex 32)." >&2
    exit 1
    ;;
esac

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
