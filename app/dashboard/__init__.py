"""The dashboard on port 9999: server-rendered pages with HTMX fragments, JSON twins for scripts, and sign-in."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from . import env_notice, nodes_views, twins, views  # noqa: E402,F401  (their routes register on bp)
