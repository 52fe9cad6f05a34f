"""The Statistics page's charts (uPlot draws on a canvas) in Debian's Chromium at the widths the dashboard supports:
every axis's tick labels are unique and do not overlap, and the three charts' time axes line up.

uPlot draws its labels on a canvas, so the test reads each chart's laid-out axes from the uPlot instance (its
formatted tick values and their positions) and measures every label with the axis's own font; the plot area is
uPlot's `.u-over` element. An init script records the instances as charts.js creates them. Screenshots:
test-artifacts/screenshots/statistics-charts-<width>.png.
"""
from __future__ import annotations

import time

import pytest
import requests

from app.db import make_engine, make_session_factory
from app.telemetry.stats import StatsSink
from tests.dashboard.conftest import record
from tests.dashboard.test_browser import (SHOTS, _env, airllm, browser, console, generate,  # noqa: F401 (fixtures)
                                          page)
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

WIDTHS = [360, 768, 1024, 1400, 1920]
MODEL = "llama3.2:1b"

# Every uPlot instance charts.js makes, in order (the constructor is wrapped when uPlot's script defines it).
RECORD_PLOTS = """(() => {
  let wrapped;
  window.__plots = [];
  Object.defineProperty(window, "uPlot", { configurable: true, get() { return wrapped; }, set(real) {
    wrapped = function (opts, data, target) { const u = new real(opts, data, target); window.__plots.push(u); return u; };
    Object.assign(wrapped, real);
    wrapped.prototype = real.prototype;
  } });
})();"""

# For each chart on the page: its plot area, and per axis the label text, centre and size in CSS pixels.
READ_AXES = """() => window.__plots.filter((u) => u.root.isConnected).map((u) => {
  const box = u.root.getBoundingClientRect(), over = u.over.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  return {
    chart: u.root.parentNode.dataset.chart,
    plot: { left: over.left - box.left, right: box.right - over.right, width: over.width, top: over.top,
            row: u.root.closest("figure").getBoundingClientRect().top },
    axes: u.axes.map((axis, i) => {
      if (!axis.show || !axis._values) { return null; }
      u.ctx.font = axis.font[0];
      const lineHeight = axis.font[1] * 1.5 / ratio;
      const labels = [];
      axis._splits.forEach((value, j) => {
        const text = axis._values[j] == null ? "" : String(axis._values[j]);
        if (text === "") { return; }
        const lines = text.split("\\n");
        labels.push({ text: text, at: u.valToPos(value, axis.scale),
                      width: Math.max(...lines.map((l) => u.ctx.measureText(l).width)) / ratio,
                      height: lines.length * lineHeight });
      });
      return { index: i, horizontal: axis.side % 2 === 0, size: axis._size / ratio, labels: labels };
    }).filter((a) => a !== null),
  };
})"""


@pytest.fixture(scope="module")
def ollama():
    server = FakeOllama("ollama").start()
    yield server
    server.stop()


def history(now: float) -> list:
    """A day of past traffic as the workers would have written it, fast enough that latencies are fractions of a
    millisecond (the range where ticks such as 0.5, 1, 1.5 ms collapsed to "1 ms, 1 ms"), with time to first token
    (the third chart's second axis)."""
    past = [record(model=MODEL, duration_ms=0.3 + (i % 7) * 0.2, ttfb_ms=0.2 + (i % 3) * 0.1,
                   started_wall=now - 120 - i * 47) for i in range(60)]
    past += [record(model=MODEL, duration_ms=0.5 + (i % 4) * 0.3, ttfb_ms=0.3, started_wall=now - 3600 - i * 900)
             for i in range(90)]
    return past


@pytest.fixture(scope="module")
def server(tmp_path_factory, ollama, airllm):
    """A proxy with a day of fast traffic in its database, and a dozen real requests just now."""
    db = tmp_path_factory.mktemp("charts") / "charts.db"
    process = ProxyProcess(db, env=_env(ollama, airllm)).start()
    engine = make_engine(f"sqlite:///{db}")
    with make_session_factory(engine).begin() as session:
        StatsSink().write(session, history(time.time()))
    engine.dispose()
    for i in range(12):
        assert generate(process.proxy_url, MODEL, f"chart {i}").status_code == 200
    _wait_for_stats(process.dashboard_url, 150 + 12)
    yield process
    process.stop()


def _wait_for_stats(dash: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{dash}/stats", timeout=5).json()["totals"]["requests"] >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{count} requests did not reach the statistics")


def problems_of(chart: dict) -> list[str]:
    """Duplicate tick labels, labels that overlap their neighbours, labels wider than their axis."""
    problems = []
    for axis in chart["axes"]:
        where = f"{chart['chart']} axis {axis['index']}"
        texts = [label["text"] for label in axis["labels"]]
        if len(set(texts)) != len(texts):
            problems.append(f"{where}: duplicate ticks {texts}")
        ordered = sorted(axis["labels"], key=lambda label: label["at"])
        for a, b in zip(ordered, ordered[1:]):
            if axis["horizontal"]:
                gap = (b["at"] - b["width"] / 2) - (a["at"] + a["width"] / 2)
            else:
                gap = (b["at"] - a["at"]) - (a["height"] + b["height"]) / 2 / 1.5  # glyph height, without leading
            if gap < 8:
                problems.append(f"{where}: {a['text']!r} and {b['text']!r} are {gap:.1f} px apart")
        if not axis["horizontal"]:
            too_wide = [label["text"] for label in axis["labels"] if label["width"] > axis["size"]]
            if too_wide:
                problems.append(f"{where}: {too_wide} wider than the axis ({axis['size']:.0f} px)")
    return problems


def draw(page, url: str, width: int) -> list[dict]:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    page.wait_for_function("window.__plots.filter((u) => u.root.isConnected).length === 3")
    return page.evaluate(READ_AXES)


@pytest.mark.parametrize("range_name", ["hour", "day"])
def test_chart_ticks_are_unique_readable_and_aligned_at_every_width(page, server, range_name):
    page.context.add_init_script(RECORD_PLOTS)
    url = f"{server.dashboard_url}/statistics?chart={range_name}"
    for width in WIDTHS:
        charts = draw(page, url, width)
        assert [c["chart"] for c in charts] == ["requests", "latency", "speed"]
        latency = next(c for c in charts if c["chart"] == "latency")
        assert any(label["text"].endswith("ms") for axis in latency["axes"] for label in axis["labels"])
        problems = [p for chart in charts for p in problems_of(chart)]
        plots = {(round(c["plot"]["left"]), round(c["plot"]["right"])) for c in charts}
        if len(plots) != 1:
            problems.append(f"plot areas differ (left, right margins): {plots}")
        for row in {round(c["plot"]["row"]) for c in charts}:  # charts side by side: plots start at one height
            tops = {round(c["plot"]["top"]) for c in charts if round(c["plot"]["row"]) == row}
            if len(tops) != 1:
                problems.append(f"charts in one row have their plots at different heights: {sorted(tops)}")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#charts").screenshot(path=str(SHOTS / f"statistics-charts-{range_name}-{width}.png"),
                                           caret="initial")
        assert problems == [], f"at {width} px: {problems}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing sticks out sideways
