"""The failed-authentication throttle: a sliding window per address, the private table's bounded memory, and the
shared table seen by forked processes."""
import multiprocessing

import pytest

from app.auth_throttle import FailureThrottle, SharedFailureThrottle, wait_seconds


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("kind", [FailureThrottle, SharedFailureThrottle])
def test_the_eleventh_attempt_in_a_minute_waits_until_the_oldest_failure_expires(kind):
    clock = Clock()
    throttle = kind(limit=10, window_s=60, clock=clock)
    for i in range(10):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("10.0.0.1") == 50  # the first failure (at 1000) expires at 1060; now is 1010
    assert throttle.retry_after("10.0.0.2") is None  # per address
    clock.now = 1060.5
    assert throttle.retry_after("10.0.0.1") is None  # a sliding window: one slot is free again
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 1
    clock.now += 120
    assert throttle.retry_after("10.0.0.1") is None


def test_the_rule():
    assert wait_seconds([], 100.0, 2, 60) is None
    assert wait_seconds([50.0, 90.0], 100.0, 2, 60) == 10
    assert wait_seconds([30.0, 90.0], 100.0, 2, 60) is None  # 30 is out of the window
    assert wait_seconds([99.9, 99.95], 100.0, 2, 0.2) == 1  # never "retry in 0 s"


def test_private_memory_is_bounded_by_forgetting_the_longest_quiet_address():
    clock = Clock()
    throttle = FailureThrottle(limit=2, window_s=60, max_addresses=3, clock=clock)
    for address in ("a", "b", "c"):
        throttle.failed(address)
        throttle.failed(address)
    throttle.failed("a")  # a is the most recent now
    throttle.failed("d")
    assert list(throttle._failures) == ["c", "a", "d"]
    assert throttle.retry_after("a") == 60 and throttle.retry_after("b") is None
    assert all(len(times) <= 2 for times in throttle._failures.values())  # a deque of at most `limit` times


def _fail_in_child(throttle, address, times, done):
    for _ in range(times):
        throttle.failed(address)
    done.set()


def test_failures_in_forked_workers_count_together():
    """gunicorn's workers are forks of the master that made the table: each sees the others' failures."""
    throttle = SharedFailureThrottle(limit=10, window_s=60)
    context = multiprocessing.get_context("fork")
    done = context.Event()
    children = [context.Process(target=_fail_in_child, args=(throttle, "203.0.113.9", 5, done)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert throttle.retry_after("203.0.113.9") is not None  # 5 + 5 failures, none of them in this process
    assert throttle.retry_after("203.0.113.10") is None


def test_a_colliding_address_takes_the_slot_over():
    throttle = SharedFailureThrottle(limit=2, window_s=60, slots=1)
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is not None
    throttle.failed("b")  # the same (only) slot
    assert throttle.retry_after("a") is None and throttle.retry_after("b") is None


def test_the_message_says_when_to_retry():
    assert "retry in 7 s" in FailureThrottle().message(7)
    assert SharedFailureThrottle(slots=1).message(7) == FailureThrottle().message(7)
