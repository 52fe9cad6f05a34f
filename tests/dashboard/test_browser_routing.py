"""The IntelliProxyLLM pages (Routing, Performance) in Debian's Chromium (Playwright) against the real server
(gunicorn, two gevent workers) in front of a fake Ollama with a realistic model set: a coder, a reasoning model,
a vision model, small and mid-size general models and an embedding model.

Screenshots go to test-artifacts/screenshots/ (routing*.png, performance.png); a JavaScript error or a
Content-Security-Policy violation fails the test (the `page` fixture of test_browser.py).
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.dashboard.test_browser import SHOTS, browser, console, page  # noqa: F401  (the browser fixtures)
from tests.intelli.conftest import REALISTIC_MODELS, faulty_ollama, set_faults
from tests.support.proxy_process import ProxyProcess, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CODER, REASONER, VISION = "qwen2.5-coder:7b", "deepseek-r1:14b", "llava:7b"
SMALL, GENERAL, EMBED = "llama3.2:3b", "llama3.1:8b", "nomic-embed-text:latest"
CONFIG_POLL = 0.1


@pytest.fixture(scope="module")
def ollama():
    """The realistic model set; a model may carry `faults` (tests/intelli/conftest.py) that only its requests see."""
    fake = faulty_ollama("ollama", [dict(m) for m in REALISTIC_MODELS])
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, ollama):
    """One gunicorn for the whole module; the AirLLM service is disabled (its seed) and nothing listens there."""
    tmp = tmp_path_factory.mktemp("routing")
    process = ProxyProcess(tmp / "routing.db", env={
        "OLLAMA_HOST": f"127.0.0.1:{ollama.port}", "AIRLLM_HOST": "127.0.0.1", "AIRLLM_PORT": str(free_port()),
        "CONFIG_POLL_SECONDS": str(CONFIG_POLL), "CATALOG_POLL_SECONDS": "1"}).start()
    _wait_for_catalog(process.dashboard_url)
    yield process
    process.stop()


def _wait_for_catalog(dash: str, timeout: float = 15.0) -> None:
    """Both workers have read the model list (each worker has its own catalog; keep-alive-free requests spread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = [requests.get(f"{dash}/config/model-attributes", timeout=5).json()["models"] for _ in range(6)]
        if all(sum(m["installed"] for m in models) == len(REALISTIC_MODELS) for models in answers):
            return
        time.sleep(0.2)
    raise TimeoutError("the model catalog did not load")


def shot(page, name: str) -> None:
    """A full-page screenshot that leaves the DOM alone: Playwright's default caret hiding leaves `style=""` on
    every input, which htmx then settles onto the swapped-in copies (an inline style: a CSP violation)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, caret="initial")


def post_requests(page, path: str) -> list:
    """Every POST to `path` the page sends from now on (to look at its headers)."""
    seen: list = []
    page.on("request", lambda r: seen.append(r) if r.method == "POST" and r.url.endswith(path) else None)
    return seen


# -- Try a prompt -----------------------------------------------------------------------------------------

def test_try_a_prompt_shows_the_decision_with_its_reasons(page, server):
    page.goto(f"{server.dashboard_url}/routing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Routing")
    expect(page.locator("#attr-rows tr")).to_have_count(len(REALISTIC_MODELS))
    page.wait_for_load_state("networkidle")
    shot(page, "routing")

    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Prompt", exact=True).fill("Write a Python function that parses a CSV file and returns a list of dicts. "
                                     "Add type hints and a unit test.")
    page.get_by_role("button", name="Show the decision").click()
    decision = page.locator(".intelli-decision")
    expect(decision.locator(".intelli-verdict strong").first).to_have_text(CODER)
    expect(decision.locator(".intelli-verdict .chip")).to_have_text("code")
    chosen = decision.locator("tbody tr").first
    expect(chosen.locator("td").nth(1)).to_have_text(CODER)
    expect(chosen.locator("td").nth(3)).to_contain_text("good at code")
    expect(decision.locator("tr", has_text=EMBED)).to_contain_text("excluded: embedding-only model")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("Write a Python function that parses a CSV file and returns a "
                                                      "list of dicts. Add type hints and a unit test.")
    assert page.evaluate("window.__sameDocument") is True  # an HTMX swap, not a page load
    shot(page, "routing-decision")

    page.get_by_label("Prompt", exact=True).fill("Schreibe ein kurzes Gedicht über den Herbst im Wald, mit Reimen.")
    page.get_by_role("button", name="Show the decision").click()
    verdict = decision.locator(".intelli-verdict")
    expect(verdict).to_contain_text("language de")
    expect(verdict.locator(".chip")).to_have_text("creative")
    german_choice = verdict.locator("strong").first.inner_text()
    assert german_choice in (GENERAL, SMALL), german_choice  # a multilingual general model writes the poem
    shot(page, "routing-decision-german")


def test_try_form_works_with_the_keyboard_alone(page, server):
    page.goto(f"{server.dashboard_url}/routing")
    page.get_by_label("Prompt", exact=True).focus()
    page.keyboard.type("What is in this picture?")
    page.keyboard.press("Tab")
    expect(page.get_by_label("System prompt (optional)")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("with an image")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_label("with tools")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show the decision")).to_be_focused()
    page.keyboard.press("Enter")
    decision = page.locator(".intelli-decision")
    expect(decision.locator(".intelli-verdict strong").first).to_have_text(VISION)
    expect(decision.locator("tr", has_text=CODER)).to_contain_text("excluded")
    expect(page.get_by_label("with an image")).to_be_checked()  # the form comes back as it was typed
    # Focus stays in the form after the swap, so the keyboard user can go on from where they were.
    expect(page.get_by_role("button", name="Show the decision")).to_be_focused()
    # An empty prompt: an inline error tied to the field, reached by Enter as well.
    page.get_by_label("Prompt", exact=True).fill("   ")
    page.get_by_role("button", name="Show the decision").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#try-prompt-error")).to_have_text("Type a prompt to classify.")
    expect(page.get_by_label("Prompt", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()  # straight back to the field to fix
    expect(page.locator(".intelli-decision")).to_have_count(0)


# -- Fallback chains --------------------------------------------------------------------------------------

def test_fallback_chain_edited_on_the_page_routes_a_failing_model(page, server, ollama):
    dash = server.dashboard_url
    page.goto(f"{dash}/routing")
    posts = post_requests(page, "/routing/fallbacks")
    form = page.locator("#fallbacks form").first
    page.get_by_label("Model", exact=True).fill(GENERAL)
    page.get_by_label("Fallbacks").fill(SMALL)
    page.get_by_role("button", name="Save chain").click()
    row = page.locator("#fallbacks tbody tr", has_text=GENERAL)
    expect(row.locator("td").first).to_have_text(SMALL)
    expect(form.locator(".saved")).to_have_text("Saved.")
    expect(page.get_by_label("Fallbacks")).to_have_value("")
    assert posts and posts[0].headers.get("hx-request") == "true" and posts[0].headers.get("x-csrf-token")
    assert requests.get(f"{dash}/config/fallbacks", timeout=5).json()["fallbacks"] == {GENERAL: SMALL}
    shot(page, "routing-fallbacks")

    # A loop (SMALL -> GENERAL -> SMALL) is refused inline; nothing changes.
    page.get_by_label("Model", exact=True).fill(SMALL)
    page.get_by_label("Fallbacks").fill(GENERAL)
    page.get_by_role("button", name="Save chain").click()
    error = page.locator("#fb-chain-error")
    expect(error).to_have_text(f"loop: {GENERAL} -> {SMALL} -> {GENERAL}")
    expect(page.get_by_label("Fallbacks")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Fallbacks")).to_be_focused()
    expect(form.locator(".actions")).to_contain_text("Not saved.")
    expect(page.get_by_label("Model", exact=True)).to_have_value(SMALL)  # what was typed stays for correcting
    expect(page.get_by_label("Fallbacks")).to_have_value(GENERAL)
    expect(form.locator(".saved")).to_have_count(0)
    expect(page.locator("#fallbacks tbody tr")).to_have_count(1)
    assert requests.get(f"{dash}/config/fallbacks", timeout=5).json()["fallbacks"] == {GENERAL: SMALL}
    shot(page, "routing-loop-error")

    # GENERAL fails with a 500: the chain's next model answers, and says so.
    set_faults(ollama, GENERAL, status=500)
    try:
        wait_for_config_propagation(server)  # the fault is the fake's; the catalog's chain is the same everywhere
        for _ in range(2):  # no keep-alive: both workers answer one each
            response = requests.post(f"{server.proxy_url}/api/generate", json={
                "model": GENERAL, "prompt": "hi", "stream": False, "options": {"num_predict": 3}}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.headers["X-IntelliProxy-Model"] == SMALL
            assert response.json()["model"] == SMALL
    finally:
        set_faults(ollama, GENERAL)

    # Remove the chain from the page: gone from the table and the API.
    page.get_by_role("button", name=f"Remove the chain of {GENERAL}").click()
    expect(page.locator("#fallbacks tbody")).to_contain_text("No fallback chains.")
    assert requests.get(f"{dash}/config/fallbacks", timeout=5).json()["fallbacks"] == {}


# -- Model attributes -------------------------------------------------------------------------------------

def test_model_attributes_edited_on_the_page_persist_after_reload(page, server):
    dash = server.dashboard_url
    page.goto(f"{dash}/routing")
    row = page.locator("#attr-rows tr", has_text=SMALL)
    page.get_by_role("button", name=f"Edit {SMALL}").focus()
    page.keyboard.press("Enter")
    speed = page.get_by_label(f"Speed of {SMALL} (1-10)")
    expect(speed).to_be_focused()  # the form opens where the keyboard is
    shot(page, "routing-attributes-edit")
    speed.fill("11")  # out of range: an inline error, nothing saved
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".field-error")).to_contain_text("Speed must be a whole number from 1 to 10")
    speed.fill("9")
    page.get_by_label(f"Complexity {SMALL} handles (1-10)").fill("2")
    page.get_by_label(f"Bias for {SMALL} (-50 to 50)").fill("7")
    row.get_by_label("creative").check()
    row.get_by_role("button", name="Save").click()
    expect(row.locator("td").nth(1)).to_have_text("9")
    expect(row).to_contain_text("edited")
    expect(page.get_by_role("button", name=f"Edit {SMALL}")).to_be_focused()

    for _ in range(3):  # both workers, each with its own catalog, show the saved values
        page.reload()
        row = page.locator("#attr-rows tr", has_text=SMALL)
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("9")
        expect(cells.nth(2)).to_have_text("2")
        expect(cells.nth(3)).to_contain_text("creative")
        expect(cells.nth(5)).to_have_text("+7")
        expect(row).to_contain_text("edited")
    stored = {m["name"]: m for m in requests.get(f"{dash}/config/model-attributes", timeout=5).json()["models"]}
    assert (stored[SMALL]["speed"], stored[SMALL]["complexity"], stored[SMALL]["bias"]) == (9, 2, 7)
    assert "creative" in stored[SMALL]["categories"] and stored[SMALL]["edited"] is True

    row.get_by_role("button", name=f"Reset {SMALL} to derived values").click()
    expect(row).not_to_contain_text("edited")
    page.reload()
    expect(page.locator("#attr-rows tr", has_text=SMALL)).not_to_contain_text("edited")


# -- Performance test -------------------------------------------------------------------------------------

def test_performance_run_all_reports_airllm_unavailable_and_lists_the_run(page, server):
    dash = server.dashboard_url
    page.goto(f"{dash}/performance")
    expect(page.get_by_role("heading", level=1)).to_have_text("Performance test")
    page.get_by_label("Prompt", exact=True).fill("Explain in two sentences what a reverse proxy does.")
    page.get_by_label("Routes").select_option("all")
    page.get_by_label("Max tokens").fill("12")
    busy = page.locator("#perf-busy")
    expect(busy).to_be_hidden()  # the "Running…" note shows only while a test runs
    before = len(requests.get(f"{dash}/performance-test", timeout=5).json()["runs"])
    page.get_by_role("button", name="Run").dblclick()  # the second click while it runs is dropped
    latest = page.locator(".intelli-run.intelli-latest")
    expect(latest.locator("tbody tr")).to_have_count(4, timeout=20000)
    expect(busy).to_be_hidden()
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    expect(page.get_by_role("button", name="Run")).to_be_focused()
    airllm = latest.locator("tbody tr", has_text="AirLLM server")
    expect(airllm.locator(".badge")).to_have_text("unavailable")
    for label in ("Ollama directly", "Through the proxy", "IntelliProxyLLM"):
        cells = latest.locator("tbody tr", has_text=label).locator("td")
        expect(cells.nth(5)).to_contain_text("ok")
        for index in (1, 2, 3, 4):  # total, first token, tokens, tokens/s
            text = cells.nth(index).inner_text().strip()
            assert text and text != "—" and any(ch.isdigit() for ch in text), (label, index, text)
    picked = latest.locator("tbody tr", has_text="IntelliProxyLLM").locator("code").inner_text()
    assert picked in {m["name"] for m in REALISTIC_MODELS} - {EMBED, VISION}, picked
    page.wait_for_load_state("networkidle")
    shot(page, "performance")

    page.reload()
    run = page.locator(".intelli-run").first
    expect(run).to_contain_text("Explain in two sentences what a reverse proxy does.")
    expect(run.locator("tbody tr")).to_have_count(4)
    expect(run.locator("tbody tr", has_text="AirLLM server")).to_contain_text("unavailable")
    runs = requests.get(f"{dash}/performance-test", timeout=5).json()["runs"]
    assert len(runs) == before + 1 and {r["target"]: r["status"] for r in runs[0]["results"]} == {
        "direct": "ok", "proxy": "ok", "airllm": "unavailable", "intelli": "ok"}
