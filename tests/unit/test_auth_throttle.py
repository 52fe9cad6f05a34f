"""The failed-authentication throttle: a sliding window per address, bounded memory, nothing for successes."""
from app.auth_throttle import FailureThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_eleventh_attempt_in_a_minute_waits_until_the_oldest_failure_expires():
    clock = Clock()
    throttle = FailureThrottle(limit=10, window_s=60, clock=clock)
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
    assert throttle.retry_after("10.0.0.1") is None and "10.0.0.1" not in throttle._failures


def test_memory_is_bounded_by_forgetting_the_longest_quiet_address():
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


def test_the_message_says_when_to_retry():
    assert "retry in 7 s" in FailureThrottle().message(7)
