"""The node pool in the database (app/node_store.py) and how it is seeded and read into the RoutingTable."""
from __future__ import annotations

import pytest

from app.config import load_settings
from app.config_store import config_as_json, load_routing_table, set_ollama_target
from app.db import make_engine, make_session_factory
from app.migrate import migrate_and_seed
from app.node_store import (MAX_NODES, NodeConflict, NodeNotFound, add_node, find_conflict, free_slot, load_nodes,
                            remove_node, update_node)
from app.routing import NodeConfig


@pytest.fixture
def factory(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    migrate_and_seed(load_settings({"DATABASE_URL": url, "OLLAMA_HOST": "gpu-a:11434"}))
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def test_only_ollama_host_seeds_one_node_that_is_the_ollama_target(factory):
    with factory() as session:
        table = load_routing_table(session)
    assert table.nodes == (NodeConfig(id=1, name="gpu-a:11434", host="gpu-a", port=11434, slot=0),)
    assert table.ollama == table.nodes[0].backend


def test_ollama_hosts_seeds_the_pool_in_order_with_its_options(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {"DATABASE_URL": url, "OLLAMA_HOSTS": "http://gpu-a:11434?vram_gb=24&num_parallel=2,gpu-b:11500?name=b"}
    migrate_and_seed(load_settings(env))
    migrate_and_seed(load_settings({**env, "OLLAMA_HOSTS": "other:1"}))  # the database wins after the first start
    with make_session_factory(make_engine(url))() as session:
        table = load_routing_table(session)
    assert [(n.name, n.host, n.port, n.vram_gb, n.num_parallel, n.slot) for n in table.nodes] == [
        ("gpu-a:11434", "gpu-a", 11434, 24.0, 2, 0), ("b", "gpu-b", 11500, None, 1, 1)]
    assert (table.ollama.host, table.ollama.port) == ("gpu-a", 11434)
    assert [n["name"] for n in config_as_json(table)["ollama_nodes"]] == ["gpu-a:11434", "b"]


def test_add_assigns_the_smallest_free_slot_and_refuses_duplicates(factory):
    with factory.begin() as session:
        b = add_node(session, {"host": "gpu-b", "port": 11434})
        c = add_node(session, {"host": "gpu-c", "port": 11434, "name": "c"})
        assert (b.slot, c.slot, b.name) == (1, 2, "gpu-b:11434")
        remove_node(session, b.id)
        assert add_node(session, {"host": "gpu-d", "port": 11434}).slot == 1
    for fields, field in (({"host": "gpu-c", "port": 11434}, "host"), ({"host": "x", "port": 1, "name": "c"}, "name")):
        with pytest.raises(NodeConflict) as err, factory.begin() as session:
            add_node(session, fields)
        assert err.value.field == field
    with factory() as session:
        assert [n.name for n in load_nodes(session)] == ["gpu-a:11434", "c", "gpu-d:11434"]


def test_free_slot_and_conflicts_are_pure_decisions():
    assert free_slot([]) == 0 and free_slot([0, 1, 3]) == 2 and free_slot(range(MAX_NODES)) is None
    nodes = [NodeConfig(id=1, name="a", host="h", port=1)]
    assert find_conflict(nodes, {"name": "b", "host": "h", "port": 1}).field == "host"
    assert find_conflict(nodes, {"name": "a", "host": "h", "port": 1}, node_id=1) is None


def test_the_last_node_and_the_last_enabled_node_stay(factory):
    with pytest.raises(NodeConflict, match="last node"), factory.begin() as session:
        remove_node(session, 1)
    with factory.begin() as session:
        b = add_node(session, {"host": "gpu-b", "port": 11434, "enabled": False})
    with pytest.raises(NodeConflict, match="stay enabled"), factory.begin() as session:
        update_node(session, 1, {"enabled": False})
    with pytest.raises(NodeConflict, match="last enabled"), factory.begin() as session:
        remove_node(session, 1)
    with pytest.raises(NodeNotFound), factory.begin() as session:
        update_node(session, 99, {"weight": 2.0})
    with factory.begin() as session:
        remove_node(session, b.id)


def test_the_first_node_is_the_seed_target_and_keeps_the_config_row_in_sync(factory):
    with factory.begin() as session:
        set_ollama_target(session, "gpu-z", 7000)
        b = add_node(session, {"host": "gpu-b", "port": 11434, "name": "keep"})
    with factory() as session:
        table = load_routing_table(session)
        assert table.nodes[0].name == "gpu-z:7000"  # a default name follows the address
        assert config_as_json(table)["ollama_host"] == "gpu-z"
    with factory.begin() as session:
        remove_node(session, 1)
        update_node(session, b.id, {"port": 8000})
    with factory() as session:
        table = load_routing_table(session)
        row = session.execute(__import__("sqlalchemy").text("SELECT ollama_host, ollama_port FROM proxy_config")).one()
    assert (table.ollama.host, table.ollama.port, tuple(row)) == ("gpu-b", 8000, ("gpu-b", 8000))
    assert table.nodes[0].name == "keep"  # a name given by the operator stays
