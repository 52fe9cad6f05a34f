"""The deployment files read as what they claim to be (no Docker engine here: structure, not a build).

docker-compose.yml parses with the services, ports, volumes, profile and GPU reservation; every variable it
references and every variable the app reads is documented in .env.example; the Dockerfiles install what they
should (no torch in the proxy's) and run as a non-root user with a HEALTHCHECK on /health; deploy/nginx.conf
agrees with the app's defaults on limits and timeouts.
"""
from __future__ import annotations

import re
import runpy
import subprocess
from pathlib import Path

import pytest
import yaml

from app.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# Read by the code but not settings an operator sets.
INTERNAL_VARS = {"INTELLIPROXY_MIGRATED", "XDG_CACHE_HOME"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value, env: dict | None = None):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} with `env` (default: unset)."""
    env = env or {}
    if not isinstance(value, str):
        return value

    def one(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", ":?") and not current or op in ("-", "?") and current is None:
            if op and op.endswith("?"):
                raise KeyError(f"{name} is required: {arg}")
            return arg or ""
        return current

    return VAR.sub(one, value)


def documented_vars() -> dict[str, str | None]:
    """NAME -> value for `NAME=value` lines, None for commented `#NAME=...` ones; each with a comment above."""
    found = {}
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$", line)
        if not match:
            continue
        commented, name, value = match.groups()
        found[name] = None if commented else value
    return found


def referenced_vars() -> set[str]:
    return {m.group(1) for m in VAR.finditer(COMPOSE.read_text())}


def app_vars() -> set[str]:
    """Every environment variable the proxy, gunicorn.conf.py and the AirLLM server read, from their source."""
    names = set()
    patterns = [r'env\.get\(\s*"([A-Z][A-Z0-9_]*)"', r'_(?:int|float|bool)\(\s*env,\s*"([A-Z][A-Z0-9_]*)"',
                r'env\[\s*"([A-Z][A-Z0-9_]*)"\s*\]', r"os\.environ\.get\(\s*['\"]([A-Z][A-Z0-9_]*)['\"]"]
    for path in [ROOT / "app" / "config.py", ROOT / "gunicorn.conf.py", ROOT / "app" / "db.py",
                 ROOT / "app" / "airllm_server" / "config.py"]:
        text = path.read_text()
        for pattern in patterns:
            names.update(re.findall(pattern, text))
    return names - INTERNAL_VARS


# -- docker-compose.yml ------------------------------------------------------------------------------------


def test_compose_has_the_four_services_and_only_airllm_needs_a_profile():
    services = compose()["services"]
    assert set(services) == {"ollama", "intelliproxy", "airllm", "nginx"}
    assert services["airllm"]["profiles"] == ["gpu"]
    # `docker compose up` on a host without a GPU starts everything else.
    assert [name for name, svc in services.items() if svc.get("profiles")] == ["airllm"]


def test_compose_ollama_is_the_official_image_with_its_model_volume():
    doc = compose()
    ollama = doc["services"]["ollama"]
    assert interpolate(ollama["image"]).startswith("ollama/ollama:")
    assert "ollama-models:/root/.ollama" in ollama["volumes"]
    assert "ollama-models" in doc["volumes"]
    assert "ports" not in ollama  # only intelliproxy talks to it


def test_compose_intelliproxy_is_reachable_only_through_nginx():
    doc = compose()
    proxy = doc["services"]["intelliproxy"]
    assert proxy["build"]["dockerfile"] == "Dockerfile"
    assert sorted(proxy["expose"]) == ["9998", "9999"]
    # TRUSTED_PROXY_HOPS=1 believes the last X-Forwarded-For hop: publishing gunicorn would let anyone spoof it.
    assert "ports" not in proxy
    assert interpolate(proxy["environment"]["TRUSTED_PROXY_HOPS"]) == "1"
    assert "intelliproxy-data:/data" in proxy["volumes"] and "intelliproxy-data" in doc["volumes"]
    assert "ollama" in proxy["depends_on"]
    assert interpolate(proxy["environment"]["OLLAMA_HOST"]) == "ollama:11434"
    with pytest.raises(KeyError, match="ADMIN_TOKEN"):
        interpolate(proxy["environment"]["ADMIN_TOKEN"])  # compose refuses to start without one


def test_compose_airllm_reserves_a_gpu_and_mounts_models_and_shards():
    doc = compose()
    airllm = doc["services"]["airllm"]
    assert airllm["build"]["dockerfile"] == "Dockerfile.airllm"
    devices = airllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    targets = {interpolate(v).split(":")[1] for v in airllm["volumes"]}
    assert targets == {"/models", "/shards"}
    assert "airllm-shards" in doc["volumes"]
    assert interpolate(airllm["environment"]["HF_HUB_OFFLINE"]) == "1"
    # The proxy's seed and the server agree on the port.
    assert interpolate(airllm["environment"]["AIRLLM_PORT"]) == \
        interpolate(doc["services"]["intelliproxy"]["environment"]["AIRLLM_PORT"]) == "8000"
    assert interpolate(doc["services"]["intelliproxy"]["environment"]["AIRLLM_HOST"]) == "airllm"


def test_compose_nginx_publishes_both_faces_and_mounts_the_shipped_config():
    nginx = compose()["services"]["nginx"]
    published = [interpolate(p) for p in nginx["ports"]]
    assert published == ["0.0.0.0:9998:9998", "127.0.0.1:9999:9999"]  # the dashboard on loopback by default
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert nginx["depends_on"]["intelliproxy"]["condition"] == "service_healthy"
    assert "daemon off;" in nginx["command"]


def test_compose_bind_mounts_are_relative_to_the_project():
    """The original mounted a Windows path; every host path here is inside the project (or set in .env)."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = interpolate(volume).split(":")[0]
            assert not re.match(r"^([A-Za-z]:\\|/)", source), (name, volume)
            if source.startswith("."):
                assert not source.startswith(".."), (name, volume)


def test_every_compose_variable_is_documented_with_the_same_default():
    documented = documented_vars()
    missing = referenced_vars() - set(documented)
    assert not missing, f"variables used in docker-compose.yml but not in .env.example: {sorted(missing)}"
    for match in VAR.finditer(COMPOSE.read_text()):
        name, op, default = match.groups()
        if op == ":-" and documented[name] is not None:
            assert documented[name] == default, f"{name}: .env.example says {documented[name]!r}, compose {default!r}"


def test_every_app_variable_is_documented():
    missing = app_vars() - set(documented_vars())
    assert not missing, f"settings the app reads but .env.example does not document: {sorted(missing)}"


def test_every_documented_variable_has_an_explanation():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:  # active settings: a comment line right above (or above the group it belongs to)
            above = next((lines[j] for j in range(i - 1, -1, -1) if not re.match(r"^[A-Z][A-Z0-9_]*=", lines[j])), "")
            assert above.startswith("#") and len(above) > 3, f"{match.group(1)} has no comment above it"
        elif re.match(r"^#[A-Z][A-Z0-9_]*=", line) and not line.startswith("#COMPOSE_PROFILES="):
            assert "#" in line[1:] or lines[i - 1].startswith("#"), f"{line} has no explanation"


def test_env_example_sets_an_admin_token_the_container_refuses_until_changed():
    token = documented_vars()["ADMIN_TOKEN"]
    assert token and token.startswith("replace-with")
    assert "replace-with*)" in (ROOT / "deploy" / "entrypoint.sh").read_text()


def test_every_app_variable_in_env_example_reaches_the_container():
    """An active .env.example setting the compose file does not pass on would be silently ignored."""
    proxy_env = set(compose()["services"]["intelliproxy"]["environment"])
    airllm_env = set(compose()["services"]["airllm"]["environment"])
    compose_only = referenced_vars()
    for name, value in documented_vars().items():
        if value is not None:
            assert name in proxy_env | airllm_env | compose_only, name


# -- Dockerfiles ---------------------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined, out = "", []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not joined:
            continue
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1] + " "
            continue
        joined += line
        if joined.strip():
            keyword, _, rest = joined.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
        joined = ""
    return out


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(path.parent / line[3:].strip())
        elif line:
            names.add(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower())
    return names


def test_proxy_dockerfile_installs_no_torch():
    steps = instructions(ROOT / "Dockerfile")
    assert not any(re.search(r"torch|airllm|transformers", args, re.I) for kw, args in steps if kw in ("RUN", "COPY"))
    copied = " ".join(args for kw, args in steps if kw == "COPY")
    assert "requirements.txt" in copied and "requirements-airllm" not in copied
    assert {"torch", "airllm", "transformers"}.isdisjoint(requirement_names(ROOT / "requirements.txt"))
    base = [args for kw, args in steps if kw == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert base and "slim" in base[0]


def test_proxy_dockerfile_runs_as_non_root_with_a_health_check_and_a_data_volume():
    steps = instructions(ROOT / "Dockerfile")
    users = [args for kw, args in steps if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [args for kw, args in steps if kw == "HEALTHCHECK"]
    assert len(health) == 1 and "/health" in health[0] and "PROXY_PORT" in health[0]
    env = " ".join(args for kw, args in steps if kw == "ENV")
    assert "DATABASE_URL=sqlite:////data/intelliproxy.db" in env
    assert '"/data"' in " ".join(args for kw, args in steps if kw == "VOLUME")
    assert [args for kw, args in steps if kw == "ENTRYPOINT"] == ['["/app/deploy/entrypoint.sh"]']
    assert [args for kw, args in steps if kw == "EXPOSE"] == ["9998 9999"]


def test_proxy_dockerfile_health_command_is_valid_python():
    health = next(args for kw, args in instructions(ROOT / "Dockerfile") if kw == "HEALTHCHECK")
    import json

    command = json.loads(health[health.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")


def test_airllm_dockerfile_uses_a_cuda_torch_base_and_keeps_its_torch():
    steps = instructions(ROOT / "Dockerfile.airllm")
    base = next(args for kw, args in steps if kw == "ARG" and args.startswith("TORCH_IMAGE="))
    assert "pytorch" in base and "cuda" in base
    run = " ".join(args for kw, args in steps if kw == "RUN")
    assert "-c /tmp/constraints.txt" in run and "torch.__version__" in run
    env = " ".join(args for kw, args in steps if kw == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "AIRLLM_SHARDS_DIR=/shards" in env
    assert '"/models", "/shards"' in " ".join(args for kw, args in steps if kw == "VOLUME")
    users = [args for kw, args in steps if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any("/health" in args for kw, args in steps if kw == "HEALTHCHECK")
    assert [args for kw, args in steps if kw == "ENTRYPOINT"] == ['["python", "-m", "app.airllm_server"]']


def test_airllm_dockerfile_filter_drops_only_the_torch_pin():
    """Run the Dockerfile's own grep over requirements-airllm.txt: torch goes, the rest stays."""
    text = (ROOT / "Dockerfile.airllm").read_text()
    pattern = re.search(r"grep -viE '([^']+)' requirements-airllm\.txt", text).group(1)
    source = ROOT / "requirements-airllm.txt"
    kept = subprocess.run(["grep", "-viE", pattern, str(source)], capture_output=True, text=True, check=True).stdout
    kept_names = {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
                  for line in kept.splitlines() if line.strip() and not line.lstrip().startswith("#")}
    assert "torch" in requirement_names(source) and "torch" not in kept_names
    assert kept_names == requirement_names(source) - {"torch"}
    for line in kept.splitlines():  # files it includes must be in the image too
        if line.startswith("-r "):
            assert line[3:].strip() in text


def test_dockerignore_keeps_local_state_out_and_the_copied_files_in():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "instance", "*.db", "*.db-wal", ".env"} <= ignored
    for dockerfile in ("Dockerfile", "Dockerfile.airllm"):
        for kw, args in instructions(ROOT / dockerfile):
            if kw != "COPY":
                continue
            for source in args.split()[:-1]:
                if source.startswith("--"):
                    continue
                assert (ROOT / source).exists(), (dockerfile, source)
                assert source.split("/")[0] not in ignored, (dockerfile, source)


# -- deploy/nginx.conf agrees with the app ----------------------------------------------------------------------


def nginx_directives() -> list[tuple[int, str, list[str]]]:
    """(depth, name, args) for every simple directive; depth 1 = inside `http {`."""
    out, depth = [], 0
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    for token in re.findall(r"[^;{}]+[;{]|}", text):
        token = token.strip()
        if token == "}":
            depth -= 1
        elif token.endswith("{"):
            depth += 1
        else:
            words = re.findall(r'"[^"]*"|\S+', token[:-1])
            out.append((depth, words[0], words[1:]))
    assert depth == 0
    return out


def seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)


def directive(name: str, depth: int = 1) -> list[str]:
    found = [args for d, n, args in nginx_directives() if n == name and d == depth]
    assert len(found) == 1, f"{name} at depth {depth}: {found}"
    return found[0]


def test_nginx_body_limit_matches_max_request_mb():
    """The two defaults agree (test_nginx.py shows nginx enforcing its limit and exempting blobs)."""
    limit = directive("client_max_body_size")[0]
    assert limit.endswith("m") and float(limit[:-1]) == load_settings({})["MAX_REQUEST_MB"]


def test_nginx_waits_longer_than_the_app_for_a_silent_upstream():
    assert seconds(directive("proxy_read_timeout")[0]) > load_settings({})["REQUEST_TIMEOUT"]
    assert seconds(directive("proxy_send_timeout")[0]) > load_settings({})["REQUEST_TIMEOUT"]


def test_nginx_drops_idle_upstream_connections_before_gunicorn_does():
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    timeouts = [seconds(args[0]) for d, n, args in nginx_directives() if n == "keepalive_timeout" and d == 2]
    assert len(timeouts) == 2 and all(t < gunicorn["keepalive"] for t in timeouts)


def test_nginx_sets_proxy_headers_and_buffering_once_for_every_location():
    """What each setting does is tested through a real nginx (test_nginx.py: chunks arrive as produced, bodies
    are not spooled, keep-alive, Host, the client address on each location). Here: the headers the app reads
    from nginx, set once in `http {}`, since a proxy_set_header in a server or location silently drops them all."""
    headers = {args[0].lower(): args[1] for d, n, args in nginx_directives() if n == "proxy_set_header"}
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for" and headers["x-forwarded-proto"] == "$scheme"
    assert {d for d, n, _ in nginx_directives() if n == "proxy_set_header"} == {1}
    assert {d for d, n, _ in nginx_directives() if n in ("proxy_buffering", "proxy_request_buffering")} == {1}


def test_deploying_doc_names_only_files_that_exist():
    text = (ROOT / "docs" / "deploying.md").read_text()
    named = set(re.findall(r"`((?:deploy|docs|app|tests)/[\w./-]+|Dockerfile(?:\.airllm)?|docker-compose\.yml|"
                           r"\.env\.example|gunicorn\.conf\.py|requirements[\w-]*\.txt)`", text))
    named |= set(re.findall(r"\]\(([\w-]+\.md)\)", text))
    assert {"deploy/nginx.conf", "deploy/sqlite_backup.py", "Dockerfile.airllm"} <= named
    for name in named:
        path = ROOT / name if "/" in name or not name.endswith(".md") or name.startswith("docs") else ROOT / "docs" / name
        assert path.exists(), name


def test_no_tracked_file_points_outside_the_repository():
    """A clone has no ../shared: no file may send a reader there (the README runs scripts/bench.py)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = [name for name in tracked if name != "tests/deploy/test_files.py" and (ROOT / name).is_file()]
    assert "README.md" in files and "scripts/bench.py" in files
    assert [name for name in files if "../shared" in (ROOT / name).read_text(errors="replace")] == []
    assert ".venv/bin/python scripts/bench.py" in (ROOT / "README.md").read_text()
