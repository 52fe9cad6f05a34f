"""Jinja filters and the template context every dashboard page gets (navigation, auth mode)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask, request, url_for
from werkzeug.routing import BuildError

from .nav import NAV_ITEMS
from .services import human_size


def duration_ms(value) -> str:
    """12.3 ms, 1.24 s, 2 min 5 s."""
    if value is None:
        return "—"
    value = float(value)
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"
    seconds = value / 1000
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def parameters(billions) -> str:
    """A parameter count given in billions, as Ollama writes it: 162K, 137M, 7.6B, 70B; — when unknown."""
    if billions is None:
        return "—"
    count = float(billions) * 1e9
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if round(count / scale, 1) >= 1:
            value = count / scale
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}".removesuffix(".0") + unit
    return f"{count:.0f}"


def uptime(seconds) -> str:
    seconds = int(seconds or 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def number(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def iso_utc(value) -> str:
    """An ISO-8601 UTC timestamp for <time datetime=...> (static/app.js shows it in the browser's time zone)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clock_utc(value) -> str:
    """HH:MM:SS UTC: what shows before JavaScript localises it."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def nav_items() -> list[dict]:
    """NAV_ITEMS with URLs and which one is the current page."""
    items = []
    for label, endpoint in NAV_ITEMS:
        try:
            url = url_for(endpoint)
        except BuildError:  # a page whose blueprint this deployment does not register
            continue
        current = request.endpoint == endpoint or (url != "/" and request.path.startswith(url.rstrip("/") + "/"))
        items.append({"label": label, "url": url, "current": current})
    return items


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(human_size=human_size, duration_ms=duration_ms, parameters=parameters, uptime=uptime, number=number,
                                 iso_utc=iso_utc, clock_utc=clock_utc)
    app.context_processor(lambda: {"nav_items": nav_items})
