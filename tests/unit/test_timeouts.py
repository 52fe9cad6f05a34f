"""The rules for waiting on clients: body read budgets and whom a full worker gives up on."""
from __future__ import annotations

from app.proxy.timeouts import BODY_RATE_BYTES, body_read_budget, next_check_in, pick_victim


def test_a_read_may_wait_the_whole_timeout_while_the_body_keeps_its_pace():
    assert body_read_budget(elapsed=0.0, received=0, timeout=60) == 60
    assert body_read_budget(elapsed=100.0, received=2 * BODY_RATE_BYTES, timeout=60) == 60


def test_a_trickling_body_runs_out_of_allowance():
    assert body_read_budget(elapsed=90.0, received=10, timeout=60) == 30  # the whole body's allowance binds
    assert body_read_budget(elapsed=120.0, received=10, timeout=60) <= 0
    assert body_read_budget(elapsed=120.0, received=BODY_RATE_BYTES, timeout=60) == 60  # 1 MiB bought a minute


def test_the_longest_waiter_of_the_full_server_is_given_up_on():
    a, b = object(), object()
    waiting = {"old": (a, 10.0), "older_elsewhere": (b, 1.0), "young": (a, 19.5), "mid": (a, 12.0)}
    assert pick_victim(waiting, a, now=20.0) == "old"
    assert pick_victim(waiting, b, now=20.0) == "older_elsewhere"


def test_nobody_is_given_up_on_before_waiting_a_second():
    server = object()
    waiting = {"fresh": (server, 9.6)}
    assert pick_victim(waiting, server, now=10.0) is None
    assert abs(next_check_in(waiting, server, now=10.0) - 0.6) < 1e-9
    assert next_check_in({}, server, now=10.0) is None
