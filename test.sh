#!/usr/bin/env bash
# Run the whole test suite: installs what it needs (Debian's chromium, nginx and PostgreSQL, the Python packages
# including the CPU build of torch for the AirLLM server's tests), then runs pytest. Extra arguments go
# to pytest, e.g. ./test.sh tests/unit -q
set -euo pipefail
cd "$(dirname "$0")"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)  # the shared-database test
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.test-requirements.sha256
wanted=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  # torch first and pinned: the CPU wheel of 2.13.0 lies on these machines; any other version is a CUDA build.
  .venv/bin/pip install --quiet --disable-pip-version-check "$(grep -E '^torch==' requirements-airllm.txt)"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-airllm.txt
  echo "$wanted" > "$stamp"
fi

exec .venv/bin/python -m pytest "$@"
