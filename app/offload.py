"""Run blocking work (database calls) in a real OS thread, never on the gevent event loop.

Under gunicorn's gevent worker `threading` is monkey-patched, so a "background thread" is a greenlet, and a
database call that blocks in C (sqlite3's busy handler sleeping while another process holds the write lock,
a libpq wait) stops every greenlet of the worker: every stream, every `/api/version`. gevent's hub threadpool
runs the call in a native thread and lets the calling greenlet wait cooperatively. Without gevent (unit tests,
scripts, `alembic`) the callers already run in plain threads, so the call simply runs where it is.
"""
from __future__ import annotations

import contextvars
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


def gevent_active() -> bool:
    """True when gevent has monkey-patched this process (checked without importing gevent otherwise)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def run_blocking(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` in a native thread of gevent's hub threadpool when gevent is active; its result or
    its exception comes back to the caller as if called directly. It runs in a copy of the caller's context
    variables, so code called from a Flask request still sees `current_app`."""
    if not gevent_active():
        return fn(*args, **kwargs)
    import gevent

    return gevent.get_hub().threadpool.apply(contextvars.copy_context().run, (fn, *args), kwargs)


def in_transaction(session_factory, work: Callable[..., T]) -> T:
    """`work(session)` in one transaction (`session_factory.begin()`), run with run_blocking: what a write that
    may wait for another process's lock should use."""
    def transaction() -> T:
        with session_factory.begin() as session:
            return work(session)

    return run_blocking(transaction)
