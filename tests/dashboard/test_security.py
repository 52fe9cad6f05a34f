"""Who may use the dashboard port: ADMIN_TOKEN (cookie or Bearer) or loopback only; CSRF; security headers."""
from __future__ import annotations

import pytest

from app.dashboard import security

from .conftest import close_app, csrf_token_of, make_app

TOKEN = "s3cret-admin-token"


@pytest.fixture
def locked(tmp_path, monkeypatch):
    """A dashboard with ADMIN_TOKEN set (and no pause after a wrong token, to keep the suite fast)."""
    monkeypatch.setattr(security, "LOGIN_FAILURE_DELAY_S", 0)
    dispatcher, app = make_app(tmp_path, ADMIN_TOKEN=TOKEN)
    yield app
    close_app(dispatcher)


def login_csrf(client) -> str:
    """Open the login form; the CSRF token it carries."""
    client.get("/login")
    with client.session_transaction() as session:
        return session["csrf"]


def signed_in(app):
    """A test client signed in through the login form; returns it and its session's (new) CSRF token."""
    client = app.test_client()
    client.post("/login", data={"token": TOKEN, "csrf_token": login_csrf(client)})
    with client.session_transaction() as session:
        return client, session["csrf"]


def client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


# -- headers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/connections", "/stats", "/config/airllm", "/health", "/metrics",
                                  "/static/app.css"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_or_event_handler(client):
    import re

    for path in ("/", "/connections", "/models", "/statistics", "/log", "/api-reference"):
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "style=" not in html, path  # style-src 'self' forbids inline style attributes too


# -- without ADMIN_TOKEN: loopback only -----------------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_are_served(client, address):
    assert client.get("/connections", environ_base={"REMOTE_ADDR": address}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/connections", "/stats", "/requests", "/metrics", "/config/airllm"])
def test_other_clients_are_refused_without_admin_token(client, path):
    response = client.get(path, environ_base={"REMOTE_ADDR": "192.168.1.20"})
    assert response.status_code == 403
    assert b"only clients on this machine" in response.data


def test_config_api_writes_are_refused_from_other_machines(client, services):
    response = client.post("/config/ollama", json={"port": 1234}, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert response.status_code == 403
    assert services.watcher.refresh(force=True).ollama.port == 11434


def test_loopback_address_under_a_foreign_host_name_is_refused(client):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1."""
    assert client.get("/connections", headers={"Host": "evil.example:9999"}).status_code == 403
    assert client.get("/connections", headers={"Host": "localhost:9999"}).status_code == 200
    assert client.get("/connections", headers={"Host": "[::1]:9999"}).status_code == 200


def test_health_stays_open(client):
    assert client.get("/health", environ_base={"REMOTE_ADDR": "10.0.0.7"}).status_code == 200


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                                    {"X-Forwarded-For": "127.0.0.1"}])
def test_requests_through_an_untrusted_reverse_proxy_are_refused_without_admin_token(client, header):
    """nginx on the same host connects from loopback: with TRUSTED_PROXY_HOPS=0 its clients would all look local."""
    response = client.get("/config/airllm", headers={"Host": "localhost", **header})
    assert response.status_code == 403
    message = response.get_json()["error"]
    assert "ADMIN_TOKEN" in message and "TRUSTED_PROXY_HOPS" in message
    page = client.get("/connections", headers={"Accept": "text/html", **header})
    assert page.status_code == 403 and b"TRUSTED_PROXY_HOPS" in page.data
    assert client.get("/health", headers=header).status_code == 200


def test_forwarded_headers_are_judged_by_the_trusted_hops_and_the_token(tmp_path):
    """With hops set, TrustedProxyFix takes the client from the header (a remote one is refused as remote); with
    ADMIN_TOKEN set, the token decides."""
    assert security.forwarded_by_untrusted_proxy({"X-Forwarded-For": "10.0.0.1"}, 0)
    assert not security.forwarded_by_untrusted_proxy({"X-Forwarded-For": "10.0.0.1"}, 1)
    assert not security.forwarded_by_untrusted_proxy({}, 0)
    from werkzeug.test import Client

    from app.factory import create_app

    dispatcher = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'hops.db'}", "TRUSTED_PROXY_HOPS": 1,
                             "TELEMETRY_FLUSH_SECONDS": 3600.0, "CONFIG_POLL_SECONDS": 3600.0})
    try:
        client = Client(dispatcher.dashboard_app)  # TrustedProxyFix in front, as gunicorn serves it
        nginx = {"REMOTE_ADDR": "127.0.0.1"}  # the proxy connects from loopback, an address it trusts
        local = client.get("/config/airllm", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base=nginx)
        remote = client.get("/config/airllm", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=nginx)
        assert local.status_code == 200, local.get_data(as_text=True)
        assert remote.status_code == 403 and "only clients on this machine" in remote.get_json()["error"]
    finally:
        close_app(dispatcher)


def test_loopback_scripts_post_json_without_csrf(client, services):
    """The config API's existing callers: JSON from a script on the same machine, no session, no token."""
    response = client.post("/config/ollama", json={"host": "10.1.1.1", "port": 11500})
    assert response.status_code == 200
    assert response.get_json()["ollama_port"] == 11500
    assert client.post("/requests/clear").get_json() == {"status": "ok", "deleted": 0}


# -- CSRF -----------------------------------------------------------------------------------------------------

def test_form_posts_need_the_csrf_token(htmx_client, services):
    response = htmx_client.post("/connections/ollama", data={"host": "h", "port": "1"})
    assert response.status_code == 403 and b"CSRF" in response.data
    response = htmx_client.post("/models/airllm", data={"model": "m", "enabled": "on"},
                                headers={"X-CSRF-Token": "forged"})
    assert response.status_code == 403
    assert services.watcher.refresh(force=True).ollama.host == "ollama.test"
    token = csrf_token_of(htmx_client)
    response = htmx_client.post("/connections/ollama", data={"host": "h", "port": "1"},
                                headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert htmx_client.post("/connections/ollama", data={"host": "h2", "port": "2", "csrf_token": token}).status_code == 200


def test_body_carries_the_csrf_header_for_htmx(client):
    html = client.get("/connections").get_data(as_text=True)
    with client.session_transaction() as session:
        token = session["csrf"]
    assert f'<body hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'>' in html


def test_cross_site_requests_are_refused_even_as_json(client):
    response = client.post("/config/ollama", json={"port": 1}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    response = client.post("/requests/clear", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    response = client.post("/config/ollama", json={"port": 1}, headers={"Origin": "null"})
    assert response.status_code == 403
    same = client.post("/config/ollama", json={"port": 1}, headers={"Origin": "http://localhost"})
    assert same.status_code == 200


# -- with ADMIN_TOKEN -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/connections", "/models", "/statistics", "/log", "/api-reference"])
def test_pages_redirect_browsers_to_the_login_form(locked, path):
    response = locked.test_client().get(path, headers={"Accept": "text/html"},
                                        environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("method,path", [("GET", "/stats"), ("GET", "/requests"), ("POST", "/requests/clear"),
                                         ("GET", "/metrics"), ("GET", "/config/airllm"),
                                         ("POST", "/config/ollama")])
def test_scripts_need_the_bearer_token(locked, method, path):
    client = locked.test_client()
    response = client.open(path, method=method, json={"port": 2} if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.open(path, method=method, headers=bearer("wrong"),
                       json={"port": 2} if method == "POST" else None).status_code == 401
    ok = client.open(path, method=method, headers=bearer(), json={"port": 2} if method == "POST" else None)
    assert ok.status_code == 200


def test_htmx_requests_without_a_session_are_sent_to_the_login(locked):
    response = locked.test_client().get("/log", headers={"HX-Request": "true"})
    assert response.status_code == 401 and response.headers["HX-Redirect"] == "/login"


def test_login_sets_a_httponly_samesite_cookie_and_logout_ends_it(locked):
    client = locked.test_client()
    page = client.get("/login?next=/models", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert b'<label for="token">Admin token</label>' in page.data
    with client.session_transaction() as session:
        token = session["csrf"]
    wrong = client.post("/login", data={"token": "nope", "next": "/models", "csrf_token": token})
    assert wrong.status_code == 401 and b"That token is not right." in wrong.data
    response = client.post("/login", data={"token": TOKEN, "next": "/models", "csrf_token": token},
                           environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 303 and response.headers["Location"] == "/models"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/connections", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert page.status_code == 200 and b"Sign out" in page.data
    assert b"answers only clients on this machine" not in page.data
    with client.session_transaction() as session:
        fresh = session["csrf"]
    assert fresh != token  # a new CSRF token with the new session
    client.post("/logout", data={"csrf_token": fresh})
    assert client.get("/connections", headers={"Accept": "text/html"}).status_code == 302


def test_login_needs_its_csrf_token_and_refuses_open_redirects(locked):
    client = locked.test_client()
    assert client.post("/login", data={"token": TOKEN}).status_code == 403
    token = login_csrf(client)
    response = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_session_stops_working_when_the_admin_token_changes(locked):
    client, _token = signed_in(locked)
    assert client.get("/connections").status_code == 200
    locked.config["ADMIN_TOKEN"] = "rotated"
    assert client.get("/connections", headers={"Accept": "text/html"}).status_code == 302


def test_signed_in_session_posts_with_csrf_and_bearer_skips_it(locked):
    client, token = signed_in(locked)
    headers = {"HX-Request": "true"}
    assert client.post("/connections/ollama", data={"host": "a", "port": "5"}, headers=headers).status_code == 403
    assert client.post("/connections/ollama", data={"host": "a", "port": "5"},
                       headers={**headers, "X-CSRF-Token": token}).status_code == 200
    script = locked.test_client()  # no session at all: the Bearer header alone
    response = script.post("/connections/ollama", data={"host": "b", "port": "6"}, headers=bearer())
    assert response.status_code == 200 and b"Saved." in response.data


def test_forwarded_requests_are_served_with_the_admin_token(locked):
    response = locked.test_client().get("/config/airllm", headers={"X-Forwarded-For": "203.0.113.9", **bearer()})
    assert response.status_code == 200


def test_bearer_guessing_is_throttled_per_address(locked):
    guesser = client_at(locked, "198.51.100.7")
    signed, _ = signed_in(locked)  # a session from the same address, signed in before the guessing
    signed.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    for attempt in range(10):
        assert guesser.get("/stats", headers=bearer(f"guess-{attempt}")).status_code == 401
    for headers in (bearer("guess-10"), bearer()):  # refused before the comparison, the right token too
        refused = guesser.get("/stats", headers=headers)
        assert refused.status_code == 429 and "too many failed authentication" in refused.get_json()["error"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    other = client_at(locked, "198.51.100.8")
    assert other.get("/stats", headers=bearer()).status_code == 200
    assert signed.get("/stats").status_code == 200  # a signed cookie is no guess
    page = guesser.get("/stats", headers={"Accept": "text/html", **bearer()})
    assert page.status_code == 429 and b"too many failed authentication" in page.data


def test_login_form_guessing_is_throttled_per_address(locked):
    client = client_at(locked, "198.51.100.9")
    csrf = login_csrf(client)
    for attempt in range(10):
        assert client.post("/login", data={"token": f"guess-{attempt}", "csrf_token": csrf}).status_code == 401
    refused = client.post("/login", data={"token": TOKEN, "csrf_token": csrf})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert b"too many failed authentication" in refused.data and b'name="token"' in refused.data


def test_remote_clients_may_use_the_dashboard_with_the_token(locked):
    response = locked.test_client().get("/stats", headers=bearer(), environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert response.status_code == 200


def test_session_key_is_shared_through_the_database_when_secret_key_is_unset(tmp_path):
    first, app1 = make_app(tmp_path, SECRET_KEY="")
    second, app2 = make_app(tmp_path, SECRET_KEY="")
    try:
        assert app1.secret_key == app2.secret_key and len(app1.secret_key) == 64
    finally:
        for d in (first, second):
            close_app(d)


@pytest.mark.parametrize("address,expected", [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.2", True),
                                              ("10.0.0.1", False), ("", False), ("not-an-ip", False)])
def test_is_loopback(address, expected):
    assert security.is_loopback(address) is expected


@pytest.mark.parametrize("host,expected", [("localhost", True), ("localhost:9999", True), ("127.0.0.1:9999", True),
                                           ("[::1]:9999", True), ("evil.example", False),
                                           ("192.168.1.2:9999", False), ("127.0.0.1.nip.io", False)])
def test_host_is_loopback(host, expected):
    assert security.host_is_loopback(host) is expected


def test_config_api_answers_form_posts_with_its_own_400_and_changes_nothing(client, services):
    response = client.post("/config/ollama", data={"host": "x", "port": "1"})
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]
    assert services.watcher.refresh(force=True).ollama.host == "ollama.test"
