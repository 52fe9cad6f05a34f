"""The placement rule (app.routing.place) on hand-made snapshots: no sockets, no database."""
from app.routing import (EVICTS_IDLE, FITS, LOADED, REPLICA, SEND, WAIT, IdleModel, ModelDemand, NodeConfig,
                         NodeState, place)


def node(id, *, vram=24.0, parallel=2, weight=1.0, enabled=True, up=True, lists=True, resident=False,
         inflight=0, total=None, free=None, idle=(), loading=False):
    config = NodeConfig(id=id, name=f"gpu-{id}", host="127.0.0.1", port=11433 + id, enabled=enabled, vram_gb=vram,
                        num_parallel=parallel, weight=weight, slot=id)
    return NodeState(config=config, up=up, lists_model=lists, resident=resident, inflight_model=inflight,
                     inflight_total=inflight if total is None else total,
                     free_gb=(vram if free is None else free) if vram is not None else None,
                     idle=tuple(idle), loading=loading)


def demand(size=5.0, **kw):
    return ModelDemand(key="m:latest", size_gb=size, **kw)


def first(placement):
    assert placement.action == SEND
    config, reason = placement.candidates[0]
    return config.id, reason


def test_loaded_copy_with_a_free_slot_wins_over_an_empty_node():
    assert first(place(demand(), [node(1), node(2, resident=True, inflight=1), node(3)])) == (2, LOADED)


def test_among_loaded_copies_the_least_busy_one():
    nodes = [node(1, resident=True, inflight=1, total=3), node(2, resident=True, inflight=1, total=1)]
    assert first(place(demand(), nodes)) == (2, LOADED)


def test_a_model_loaded_nowhere_goes_where_it_fits_most_tightly():
    nodes = [node(1, free=24.0), node(2, vram=12.0, free=7.6), node(3, free=20.0)]
    assert first(place(demand(size=4.9), nodes)) == (2, FITS)


def test_fitting_beats_evicting_and_evicting_idle_models_picks_the_least_wanted():
    busy_only = node(1, free=2.0, total=2)
    hot_idle = node(2, free=2.0, idle=[IdleModel("hot", 8.0, 10.0, rate=5.0)])
    cold_idle = node(3, free=2.0, idle=[IdleModel("cold", 8.0, 20.0, rate=0.1)])
    assert first(place(demand(size=9.0), [busy_only, hot_idle, cold_idle])) == (3, EVICTS_IDLE)
    assert first(place(demand(size=9.0), [hot_idle, node(4, free=10.0)])) == (4, FITS)


def test_nobody_lists_the_model_so_any_up_node_may_answer_404_or_pull():
    nodes = [node(1, lists=False, total=3), node(2, lists=False, total=0), node(3, lists=False, up=False)]
    placement = place(demand(), nodes)
    assert [c.id for c, _ in placement.candidates] == [2, 1]


def test_down_and_disabled_nodes_are_not_chosen_while_another_is_up():
    nodes = [node(1, up=False, resident=True), node(2, enabled=False, resident=True), node(3)]
    assert [c.id for c, _ in place(demand(), nodes).candidates] == [3]


def test_when_every_node_looks_down_each_enabled_one_is_still_tried():
    nodes = [node(1, up=False), node(2, up=False, enabled=False), node(3, up=False)]
    placement = place(demand(), nodes)
    assert placement.action == SEND and [c.id for c, _ in placement.candidates] == [1, 3]


def test_the_other_candidates_follow_for_failover_loaded_first():
    nodes = [node(1, free=3.0), node(2, resident=True, inflight=0), node(3, free=20.0)]
    assert [(c.id, why) for c, why in place(demand(), nodes).candidates] == [(2, LOADED), (3, FITS), (1, "evicts busy")]


def test_a_single_node_is_never_waited_for():
    assert first(place(demand(), [node(1, resident=True, inflight=5)])) == (1, LOADED)


def test_busy_copies_mean_waiting_in_the_proxy_while_the_line_is_short():
    nodes = [node(1, resident=True, inflight=2), node(2, free=20.0)]
    assert place(demand(waiting=1, service_s=10.0), nodes).action == WAIT


def test_a_long_line_gets_a_replica_where_it_fits_when_loading_beats_waiting():
    nodes = [node(1, resident=True, inflight=2), node(2, free=20.0)]
    assert first(place(demand(size=5.0, waiting=6, service_s=2.0, load_s_per_gb=0.2), nodes)) == (2, REPLICA)
    # loading 5 GB at 2 s/GB (10 s) is slower than draining 7 requests of 2 s through 2 slots (7 s): wait
    assert place(demand(size=5.0, waiting=6, service_s=2.0, load_s_per_gb=2.0), nodes).action == WAIT


def test_no_replica_before_the_model_has_a_measured_request_time():
    nodes = [node(1, resident=True, inflight=2), node(2, free=20.0)]
    assert place(demand(waiting=30, service_s=None), nodes).action == WAIT


def test_a_replica_evicts_idle_models_only_when_that_costs_less_than_the_waiting_it_saves():
    wanted = node(2, free=2.0, idle=[IdleModel("other", 8.0, 1.0, rate=3.0)])
    nodes = [node(1, resident=True, inflight=2), wanted]
    assert place(demand(size=8.0, waiting=3, service_s=1.0, load_s_per_gb=0.1, rate=4.0), nodes).action == WAIT
    assert first(place(demand(size=8.0, waiting=20, service_s=1.0, load_s_per_gb=0.1, rate=4.0), nodes)) == \
        (2, REPLICA)


def test_without_vram_the_rule_is_loaded_first_then_least_busy():
    nodes = [node(1, vram=None, total=4), node(2, vram=None, total=1), node(3, vram=None, resident=True, inflight=1)]
    assert first(place(demand(), nodes)) == (3, LOADED)
    nodes = [node(1, vram=None, total=4), node(2, vram=None, total=1)]
    assert first(place(demand(), nodes)) == (2, "least busy")


def test_weight_breaks_ties_between_equal_nodes():
    nodes = [node(1, weight=1.0, free=20.0), node(2, weight=3.0, free=20.0)]
    assert first(place(demand(), nodes)) == (2, FITS)
