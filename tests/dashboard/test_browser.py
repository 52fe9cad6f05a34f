"""The dashboard in Debian's Chromium (Playwright) against the real server (gunicorn, two gevent workers).

Every page is screenshotted into test-artifacts/screenshots/. Each page also fails its test if the browser
reports a JavaScript error or a Content-Security-Policy violation.
"""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.fake_ollama import DEFAULT_MODELS, FakeOllama
from tests.support.proxy_process import ProxyProcess, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ADMIN_TOKEN = "browser-test-admin-token"
LIVE_MODEL = {"name": "live-stats:1b", "family": "llama", "parameter_size": "1.0B", "capabilities": ["completion"]}


@pytest.fixture(scope="module")
def ollama_a():
    server = FakeOllama("ollama", models=[dict(m) for m in DEFAULT_MODELS] + [dict(LIVE_MODEL)]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ollama_b():
    server = FakeOllama("ollama-b").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def airllm(fake_airllm):
    """The shared fake AirLLM server (tests/conftest.py): it lists llama3.1:70b and llama3.2:1b."""
    return fake_airllm


def _env(ollama, airllm, **extra):
    return {"OLLAMA_HOST": f"127.0.0.1:{ollama.port}", "AIRLLM_HOST": "127.0.0.1", "AIRLLM_PORT": str(airllm.port),
            "STORE_PROMPTS": "true", **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory, ollama_a, airllm):
    tmp = tmp_path_factory.mktemp("dashboard")
    process = ProxyProcess(tmp / "dashboard.db", env=_env(ollama_a, airllm)).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


# Reported through the console too, so a violation Chromium only reports as an event still fails the test.
REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} by ${e.sourceFile}:${e.lineNumber}`));"""


class Console:
    """What the browser reported that a clean dashboard never reports; a test may expect one exact message."""

    def __init__(self):
        self.problems: list[str] = []
        self.expected: list[str] = []

    def expect(self, text: str) -> None:
        """The next console error is this one (e.g. the 401 of a refused sign-in): not a problem, once."""
        self.expected.append(text)

    def report(self, text: str) -> None:
        if text in self.expected:
            self.expected.remove(text)
        else:
            self.problems.append(text)


_CONSOLES: dict[int, Console] = {}  # id(page) -> its Console, for the `console` fixture


@pytest.fixture
def page(browser):
    """A fresh browser context; fails the test on a JS error, any console error, or a CSP violation."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    console = _CONSOLES[id(page)] = Console()
    page.on("pageerror", lambda exc: console.report(f"JS error: {exc}"))
    page.on("console", lambda msg: console.report(f"console {msg.type}: {msg.text}")
            if msg.type == "error" or "Content Security Policy" in msg.text else None)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    del _CONSOLES[id(page)]
    assert console.problems == []


@pytest.fixture
def console(page):
    """What the `page` fixture records from the browser's console (a test may expect one exact message)."""
    return _CONSOLES[id(page)]


@pytest.fixture
def restore(server, ollama_a, airllm):
    """Put the routing config back after a test that changed it."""
    yield
    url = server.dashboard_url
    requests.post(f"{url}/config/ollama", json={"host": "127.0.0.1", "port": ollama_a.port}, timeout=5)
    requests.post(f"{url}/config/airllm/service", json={"enabled": False, "host": "127.0.0.1", "port": airllm.port},
                  timeout=5)
    for name in ("llama3.1:70b", "llama3.2:1b"):
        requests.post(f"{url}/config/model/airllm", json={"model_name": name, "enabled": False}, timeout=5)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def generate(proxy_url: str, model: str, prompt: str = "hello") -> requests.Response:
    return requests.post(f"{proxy_url}/api/generate", json={"model": model, "prompt": prompt, "stream": False,
                                                            "options": {"num_predict": 4}}, timeout=10)


def generates_seen(fake: FakeOllama) -> int:
    return sum(1 for r in fake.state.received if r.path == "/api/generate")


# -- Connections ----------------------------------------------------------------------------------------------

def test_ollama_port_change_is_saved_survives_restart_and_routes(page, server, ollama_a, ollama_b, restore):
    dash = server.dashboard_url
    page.goto(f"{dash}/connections")
    page.get_by_label("Ollama port").fill(str(ollama_b.port))
    page.get_by_role("button", name="Save Ollama connection").click()
    expect(page.locator("#ollama-form .saved")).to_contain_text(f"127.0.0.1:{ollama_b.port}")

    page.reload()
    expect(page.get_by_label("Ollama port")).to_have_value(str(ollama_b.port))
    wait_for_config_propagation(server)
    before_a, before_b = generates_seen(ollama_a), generates_seen(ollama_b)
    for _ in range(4):  # keep-alive-free requests land on both workers
        response = generate(server.proxy_url, "llama3.2:1b")
        assert response.status_code == 200 and response.headers["X-IntelliProxy-Backend"] == "ollama"
    assert generates_seen(ollama_b) - before_b == 4 and generates_seen(ollama_a) == before_a

    server.restart()
    page.goto(f"{dash}/connections")
    expect(page.get_by_label("Ollama port")).to_have_value(str(ollama_b.port))
    assert generate(server.proxy_url, "llama3.2:1b").status_code == 200
    assert generates_seen(ollama_b) - before_b == 5


def test_invalid_port_shows_an_inline_error_and_changes_nothing(page, server, ollama_a):
    page.goto(f"{server.dashboard_url}/connections")
    before = requests.get(f"{server.dashboard_url}/config/airllm", timeout=5).json()
    port = page.get_by_label("Ollama port")
    port.fill("70000")
    page.get_by_role("button", name="Save Ollama connection").click()
    error = page.locator("#ollama-port-error")
    expect(error).to_have_text("Ollama port must be an integer between 1 and 65535")
    expect(page.get_by_label("Ollama port")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ollama-form")).to_contain_text("Not saved")
    shot(page, "connections-invalid-port")
    assert requests.get(f"{server.dashboard_url}/config/airllm", timeout=5).json() == before
    page.reload()
    expect(page.get_by_label("Ollama port")).to_have_value(str(ollama_a.port))


def test_test_connection_shows_version_and_model_count_or_the_failure(page, server, ollama_a):
    page.goto(f"{server.dashboard_url}/connections")
    ollama = page.locator("#ollama-form")
    ollama.get_by_role("button", name="Test connection").click()
    expect(page.locator("#ollama-test")).to_contain_text("Connected")
    expect(page.locator("#ollama-test")).to_contain_text(f"version 0.12.0-ollama, {len(ollama_a.state.models)} models")
    page.get_by_label("Ollama port").fill(str(free_port()))  # nothing listens there; not saved
    ollama.get_by_role("button", name="Test connection").click()
    expect(page.locator("#ollama-test")).to_contain_text("Failed:")
    expect(page.locator("#ollama-test")).to_contain_text("connection refused")
    shot(page, "connections-test-failed")


# -- Models ---------------------------------------------------------------------------------------------------

def test_toggling_airllm_routes_the_next_request_there(page, server, airllm, restore):
    dash = server.dashboard_url
    page.goto(f"{dash}/connections")
    page.get_by_label("AirLLM enabled").check()
    page.get_by_role("button", name="Save AirLLM service").click()
    expect(page.locator("#airllm-form .saved")).to_contain_text("AirLLM is enabled")

    page.goto(f"{dash}/models")
    page.evaluate("window.__sameDocument = true")
    other_row = page.locator('tr[data-model="qwen2.5-coder:7b"]').element_handle()
    toggle = page.get_by_label("llama3.1:70b", exact=True)
    expect(toggle).not_to_be_checked()
    toggle.check()
    row = page.locator('tr[data-model="llama3.1:70b"]')
    expect(row.locator("td").nth(5)).to_have_text("AirLLM")  # "Runs on now"
    expect(page.get_by_label("llama3.1:70b", exact=True)).to_be_checked()
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert other_row.evaluate("el => el.isConnected")  # only the toggled row was swapped
    wait_for_config_propagation(server)

    before = generates_seen(airllm)
    response = generate(server.proxy_url, "llama3.1:70b")
    assert response.status_code == 200 and response.headers["X-IntelliProxy-Backend"] == "airllm"
    assert generates_seen(airllm) == before + 1

    # Keyboard only: focus the next switch and press Space.
    small = page.get_by_label("llama3.2:1b", exact=True)
    small.focus()
    page.keyboard.press("Space")
    expect(page.locator('tr[data-model="llama3.2:1b"] td').nth(5)).to_have_text("AirLLM")
    flags = requests.get(f"{dash}/config/airllm", timeout=5).json()["model_config"]
    assert flags == {"llama3.1:70b": True, "llama3.2:1b": True}
    page.get_by_label("Filter models").fill("70b")
    expect(page.locator("tr.model-row")).to_have_count(1)
    page.get_by_label("Filter models").fill("")
    expect(page.locator("tr.model-row")).to_have_count(5)


def test_flag_while_service_disabled_shows_a_warning(page, server, restore):
    requests.post(f"{server.dashboard_url}/config/model/airllm", json={"model_name": "qwen2.5-coder:7b",
                                                                       "enabled": True}, timeout=5)
    page.goto(f"{server.dashboard_url}/models")
    expect(page.locator('tr[data-model="qwen2.5-coder:7b"] .warning')).to_contain_text(
        "the AirLLM service is disabled")
    requests.post(f"{server.dashboard_url}/config/model/airllm", json={"model_name": "qwen2.5-coder:7b",
                                                                       "enabled": False}, timeout=5)


# -- live updates ---------------------------------------------------------------------------------------------

def _traffic(proxy_url: str, model: str, prompt: str, count: int, stop: threading.Event) -> None:
    for _ in range(count):
        if stop.is_set():
            return
        generate(proxy_url, model, prompt)
        time.sleep(0.3)


def test_log_and_statistics_update_while_requests_flow(page, server):
    marker = f"live-{uuid.uuid4().hex[:8]}"
    page.goto(f"{server.dashboard_url}/log")
    page.evaluate("window.__sameDocument = true")
    stop = threading.Event()
    worker = threading.Thread(target=_traffic, args=(server.proxy_url, LIVE_MODEL["name"], f"<b>{marker}</b>", 12,
                                                     stop))
    worker.start()
    try:
        expect(page.locator("#log-rows")).to_contain_text(marker, timeout=10000)
        expect(page.locator("#log-rows")).to_contain_text(f"<b>{marker}</b>")  # shown as text, escaped
        shot(page, "request-log")
        page.get_by_label("Status").select_option("error")
        expect(page.locator("#log-rows")).not_to_contain_text(marker)
        page.get_by_label("Status").select_option("")
        assert page.evaluate("window.__sameDocument") is True

        page.goto(f"{server.dashboard_url}/statistics")
        page.evaluate("window.__sameDocument = true")
        table = page.locator("#stats-table")
        expect(table).to_contain_text(LIVE_MODEL["name"], timeout=10000)
        first = int(table.locator("tr", has_text=LIVE_MODEL["name"]).locator("td.num").first.inner_text())
        worker.join(timeout=20)
        total = int(requests.get(f"{server.dashboard_url}/stats", timeout=5).json()["totals"]["requests"])
        expect(table.locator("tr", has_text=LIVE_MODEL["name"]).locator("td.num").first).to_have_text(
            str(12), timeout=10000)
        assert first < 12 and total >= 12
        expect(page.locator('[data-chart="requests"]')).to_have_attribute("aria-label", f"Requests and errors over "
                                                                            f"the last hour: {total} requests, 0 errors",
                                                                            timeout=10000)
        expect(page.locator("#charts canvas")).to_have_count(3)
        assert page.evaluate("window.__sameDocument") is True
        shot(page, "statistics")
    finally:
        stop.set()
        worker.join(timeout=20)


def test_overview_totals_update_without_reload(page, server):
    page.goto(server.dashboard_url + "/")
    expect(page.locator("#card-ollama")).to_be_visible()
    before = int(page.locator("#total-requests").inner_text().replace(",", ""))
    page.evaluate("window.__sameDocument = true")
    generate(server.proxy_url, "llama3.2:1b")
    expect(page.locator("#total-requests")).to_have_text(f"{before + 1:,}", timeout=10000)
    assert page.evaluate("window.__sameDocument") is True


# -- ADMIN_TOKEN ----------------------------------------------------------------------------------------------

def test_login_is_required_when_admin_token_is_set(page, console, tmp_path, ollama_a, airllm):
    process = ProxyProcess(tmp_path / "locked.db", env=_env(ollama_a, airllm, ADMIN_TOKEN=ADMIN_TOKEN)).start()
    try:
        dash = process.dashboard_url
        assert requests.get(f"{dash}/stats", timeout=5).status_code == 401
        assert requests.get(f"{dash}/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                            timeout=5).status_code == 200
        page.goto(f"{dash}/models")
        expect(page).to_have_url(f"{dash}/login?next=/models")
        expect(page.locator("nav")).to_have_count(0)
        page.get_by_label("Admin token").fill("wrong")
        console.expect("console error: Failed to load resource: the server responded with a status of 401 (UNAUTHORIZED)")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#token-error")).to_have_text("That token is not right.")
        shot(page, "login")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{dash}/models")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.locator(".access-note")).to_have_count(0)
        # The session works on both workers (a shared key), and HTMX posts carry the CSRF header.
        for _ in range(4):
            page.goto(f"{dash}/log")
            expect(page.get_by_role("heading", name="Request log")).to_be_visible()
        page.goto(f"{dash}/models")
        page.get_by_label("llama3.2:1b", exact=True).check()
        expect(page.locator('tr[data-model="llama3.2:1b"]')).to_contain_text("AirLLM is on for this model")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{dash}/login")
    finally:
        process.stop()


# -- screenshots ----------------------------------------------------------------------------------------------

PAGES = [("overview", "/", "Overview"), ("connections", "/connections", "Connections"),
         ("models", "/models", "Models"), ("statistics-page", "/statistics", "Statistics"),
         ("request-log-page", "/log", "Request log"), ("api", "/api-reference", "API")]


def test_every_page_through_the_nav_bar(page, server, restore):
    requests.post(f"{server.dashboard_url}/config/airllm/service", json={"enabled": True}, timeout=5)
    requests.post(f"{server.dashboard_url}/config/model/airllm", json={"model_name": "llama3.1:70b",
                                                                       "enabled": True}, timeout=5)
    for model in ("llama3.2:1b", "llama3.1:70b", "missing-model"):
        generate(server.proxy_url, model)
    page.goto(server.dashboard_url + "/")
    for name, path, label in PAGES:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        expect(page).to_have_url(server.dashboard_url + path)
        expect(page.get_by_role("heading", level=1)).to_have_text(label)
        page.wait_for_load_state("networkidle")
        shot(page, name)
    expect(page.locator("#code-curl")).to_contain_text(f"curl {server.proxy_url}/api/chat")


# -- a clean console on every page and every save -----------------------------------------------------------

# What autofill, password managers and Playwright's caret hiding do to inputs: a style set through the CSSOM
# (allowed by the CSP). htmx used to copy such a style attribute onto the swapped-in form (blocked by the CSP).
STYLE_INPUTS = """document.querySelectorAll("input, select, textarea").forEach((el) => {
  el.style.caretColor = "transparent"; });"""


def _save(page, button) -> None:
    """Style every input as a browser extension would, then press a save button and wait for the swap."""
    page.evaluate(STYLE_INPUTS)
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    page.wait_for_load_state("networkidle")


def test_no_console_error_on_any_page_or_form_save(page, server, ollama_a, airllm, restore):
    """Every nav page, and every form that saves something, with styled inputs: the `page` fixture fails the test on
    any console error or CSP violation."""
    dash = server.dashboard_url
    page.goto(dash + "/")
    labels = page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    assert len(labels) >= 8
    for label in labels:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(label)
        page.evaluate(STYLE_INPUTS)
        page.wait_for_load_state("networkidle")

    page.goto(f"{dash}/connections")
    _save(page, page.get_by_role("button", name="Save Ollama connection"))
    expect(page.locator("#ollama-form .saved")).to_be_visible()
    page.get_by_label("Ollama port").fill("0")
    _save(page, page.get_by_role("button", name="Save Ollama connection"))
    expect(page.locator("#ollama-port-error")).to_be_visible()
    _save(page, page.locator("#ollama-form").get_by_role("button", name="Test connection"))
    page.get_by_label("AirLLM enabled").check()
    _save(page, page.get_by_role("button", name="Save AirLLM service"))
    expect(page.locator("#airllm-form .saved")).to_contain_text("AirLLM is enabled")
    _save(page, page.locator("#airllm-form").get_by_role("button", name="Test connection"))
    expect(page.locator("#airllm-test")).to_contain_text("Connected")

    page.goto(f"{dash}/models")
    _save(page, page.get_by_label("llama3.1:70b", exact=True))
    expect(page.get_by_label("llama3.1:70b", exact=True)).to_be_checked()

    page.goto(f"{dash}/routing")
    page.get_by_role("button", name="Edit llama3.2:1b").click()
    _save(page, page.locator("tr.intelli-editing").get_by_role("button", name="Save"))
    page.get_by_label("Prompt", exact=True).fill("Write a Python function that merges two sorted lists")
    _save(page, page.get_by_role("button", name="Show the decision"))
    expect(page.locator(".intelli-decision")).to_be_visible()
    page.get_by_label("Model", exact=True).fill("qwen2.5-coder:7b")
    page.get_by_label("Fallbacks").fill("llama3.2:1b")
    _save(page, page.get_by_role("button", name="Save chain"))
    _save(page, page.get_by_role("button", name="Remove the chain of qwen2.5-coder:7b"))
    _save(page, page.get_by_role("button", name="Save timeout"))

    page.goto(f"{dash}/performance")
    page.get_by_label("Routes").select_option("direct")
    _save(page, page.locator("#perf form").get_by_role("button").first)

    page.goto(f"{dash}/log")
    _save(page, page.get_by_role("button", name="Clear log"))


def test_environment_notice_applies_the_environment_value_in_one_click(page, tmp_path, ollama_a, ollama_b, airllm):
    """Started once with ollama_a, again with OLLAMA_HOST naming ollama_b: the notice, one click, ollama_b."""
    process = ProxyProcess(tmp_path / "drift.db", env=_env(ollama_a, airllm)).start()
    try:
        process.stop()
        process.extra_env["OLLAMA_HOST"] = f"127.0.0.1:{ollama_b.port}"
        process.start()
        page.goto(f"{process.dashboard_url}/connections")
        notice = page.get_by_role("region", name="The environment names other settings")
        expect(notice).to_contain_text(f"OLLAMA_HOST names 127.0.0.1:{ollama_b.port}; in use: 127.0.0.1:{ollama_a.port}")
        expect(page.get_by_label("Ollama port")).to_have_value(str(ollama_a.port))
        shot(page, "connections-environment-notice")
        page.get_by_role("button", name="Use the environment's value for the Ollama target").click()
        expect(page).to_have_url(f"{process.dashboard_url}/connections")
        expect(page.get_by_label("Ollama port")).to_have_value(str(ollama_b.port))
        expect(notice).to_have_count(0)
    finally:
        process.stop()
