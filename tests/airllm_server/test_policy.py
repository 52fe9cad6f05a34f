"""The scheduling rules, as pure functions: admission, joining, switching models, sweep cost and ETAs."""

from __future__ import annotations

import pytest

from app.airllm_server.policy import Waiting, admits, estimate_starts, fit_step_cost, joiners, retry_after, switch_to


def w(ident, model="a", at=0.0, joins=True, steps=10, prompt=0):
    return Waiting(ident, model, joins, at, steps, prompt)


def test_the_line_holds_max_waiting_beyond_the_free_batch_places():
    assert admits(waiting=0, loading=0, active=0, max_batch=2, max_waiting=0)      # room in the batch
    assert admits(waiting=0, loading=0, active=1, max_batch=2, max_waiting=0)
    assert not admits(waiting=1, loading=0, active=1, max_batch=2, max_waiting=0)  # the last place is taken
    assert not admits(waiting=0, loading=0, active=2, max_batch=2, max_waiting=0)  # full batch, no line
    assert admits(waiting=0, loading=0, active=2, max_batch=2, max_waiting=1)
    assert not admits(waiting=1, loading=0, active=2, max_batch=2, max_waiting=1)
    assert not admits(waiting=0, loading=1, active=2, max_batch=2, max_waiting=1)  # a tokenizer load counts


def test_requests_for_the_resident_model_join_up_to_the_free_places_in_order():
    line = [w(1, at=1), w(2, at=2), w(3, at=3)]
    assert [x.id for x in joiners(line, "a", active=1, max_batch=3, now=10, switch_after_s=30)] == [1, 2]
    assert joiners(line, "a", active=3, max_batch=3, now=10, switch_after_s=30) == []
    assert joiners(line, "b", active=1, max_batch=8, now=10, switch_after_s=30) == []


def test_another_model_stops_newcomers_only_after_the_bound():
    line = [w(1, "a", at=1), w(2, "b", at=2), w(3, "a", at=3)]
    early = joiners(line, "a", active=1, max_batch=8, now=10, switch_after_s=30)
    assert [x.id for x in early] == [1, 3]                                   # 3 may overtake the waiting "b"
    late = joiners(line, "a", active=1, max_batch=8, now=32, switch_after_s=30)
    assert [x.id for x in late] == [1]                                       # the batch drains for "b"
    assert switch_to(line[1:], "a", active=0).id == 2


def test_an_empty_batch_serves_the_head_of_the_line():
    line = [w(1, "b", at=1), w(2, "a", at=2)]
    assert switch_to(line, "a", active=0).id == 1
    assert joiners(line, "a", active=0, max_batch=8, now=3, switch_after_s=30) == []
    assert switch_to(line, "a", active=1) is None                            # the running batch finishes first
    unload = [w(1, "a", at=1, joins=False)]
    assert switch_to(unload, "a", active=0).id == 1


def test_sweep_cost_fits_a_line_or_stays_flat():
    assert fit_step_cost([]) == (0.0, 0.0)
    assert fit_step_cost([(1, 0.2), (1, 0.4)]) == pytest.approx((0.3, 0.0))
    fixed, per_token = fit_step_cost([(1, 0.11), (4, 0.14), (8, 0.18)])
    assert fixed == pytest.approx(0.1, abs=0.005) and per_token == pytest.approx(0.01, abs=0.001)
    assert fit_step_cost([(1, 0.3), (8, 0.1)]) == pytest.approx((0.2, 0.0))   # noise, not a negative cost


def test_etas_play_the_rule_forward():
    cost = (0.1, 0.0)
    # One slot, running sequence needs 5 more sweeps; then #1 (10 sweeps) runs, then #2.
    etas = estimate_starts([5], [w(1, steps=10), w(2, steps=3)], "a", max_batch=1, now=0, switch_after_s=30,
                           cost=cost, switch_s=2.0)
    assert etas == pytest.approx({1: 0.5, 2: 1.5})
    # A free place: start now. Another model: after the batch drains, at the load.
    etas = estimate_starts([5], [w(1, steps=4), w(2, "b", at=1)], "a", max_batch=2, now=0, switch_after_s=30,
                           cost=cost, switch_s=2.0)
    assert etas == pytest.approx({1: 0.0, 2: 0.5})


def test_retry_after_grows_with_the_line_and_is_bounded():
    assert retry_after(0, None) == 5
    assert retry_after(3, 2.0) == 8
    assert retry_after(100, 60.0) == 600


def test_batching_settings_are_read_and_checked():
    from app.airllm_server.config import Settings

    default = Settings.from_env({})
    assert (default.max_batch, default.heartbeat_s, default.switch_after_s) == (8, 5.0, 30.0)
    assert default.worker_threads == default.max_queue + default.max_batch + 4
    custom = Settings.from_env({"AIRLLM_MAX_BATCH": "2", "AIRLLM_HEARTBEAT_S": "0.5", "AIRLLM_SWITCH_AFTER_S": "9"})
    assert (custom.max_batch, custom.heartbeat_s, custom.switch_after_s) == (2, 0.5, 9.0)
    for env in ({"AIRLLM_MAX_BATCH": "0"}, {"AIRLLM_HEARTBEAT_S": "0"}, {"AIRLLM_MAX_BATCH": "many"}):
        with pytest.raises(ValueError):
            Settings.from_env(env)
