"""run_blocking: a plain call without gevent; under gevent a native thread, while the event loop keeps running."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.offload import gevent_active, run_blocking

ROOT = Path(__file__).resolve().parents[2]
UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import gevent, time
from app.offload import gevent_active, run_blocking

real_sleep = monkey.get_original("time", "sleep")  # blocks the calling OS thread, as sqlite3's busy handler does
real_ident = monkey.get_original("threading", "get_ident")
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.01) for _ in range(1000)])
gevent.sleep(0.05)
main = real_ident()
worker = run_blocking(lambda: real_sleep(0.5) or real_ident())
ticker.kill()
gap = max(b - a for a, b in zip(ticks, ticks[1:]))
try:
    run_blocking(lambda: 1 / 0)
    raised = False
except ZeroDivisionError:
    raised = True
import contextvars
request_var = contextvars.ContextVar("request_var")
request_var.set("the caller's")
seen = run_blocking(request_var.get)  # what a Flask request's current_app relies on
print(gevent_active(), worker != main, round(gap, 3), raised, seen == "the caller's")
"""


def test_without_gevent_it_is_a_plain_call():
    assert not gevent_active()
    assert run_blocking(threading.get_ident) == threading.get_ident()
    assert run_blocking(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        run_blocking(lambda: 1 / 0)


def test_under_gevent_the_loop_keeps_running_while_the_call_blocks():
    result = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    active, other_thread, gap, raised, context = result.stdout.split()
    assert (active, other_thread, raised, context) == ("True", "True", "True", "True")
    assert float(gap) < 0.25  # the call blocked its thread for 0.5 s; the greenlet ticked on


def test_in_transaction_commits_what_work_did_and_rolls_back_on_error(tmp_path):
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import sessionmaker

    from app.offload import in_transaction

    factory = sessionmaker(create_engine(f"sqlite:///{tmp_path / 't.db'}"))
    in_transaction(factory, lambda s: s.execute(text("CREATE TABLE t (x INTEGER)")))
    assert in_transaction(factory, lambda s: s.execute(text("INSERT INTO t VALUES (1)")).rowcount) == 1

    def failing(session):
        session.execute(text("INSERT INTO t VALUES (2)"))
        raise ValueError("invalid")

    with pytest.raises(ValueError):
        in_transaction(factory, failing)
    assert in_transaction(factory, lambda s: s.execute(text("SELECT x FROM t")).scalars().all()) == [1]
