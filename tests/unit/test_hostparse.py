import pytest

from app.hostparse import parse_ollama_host


@pytest.mark.parametrize("value,expected", [
    ("", ("127.0.0.1", 11434)),
    ("example.com", ("example.com", 11434)),
    (":8080", ("127.0.0.1", 8080)),
    ("example.com:8080", ("example.com", 8080)),
    ("http://example.com", ("example.com", 80)),
    ("https://example.com", ("example.com", 443)),
    ("https://h:8443", ("h", 8443)),
    ("[::1]:8080", ("::1", 8080)),
    ("h:8080/prefix/", ("h", 8080)),
    ("  10.0.0.5  ", ("10.0.0.5", 11434)),
])
def test_parses_like_ollama_clients(value, expected):
    assert parse_ollama_host(value) == expected


def test_port_inside_host_wins_over_default_port():
    assert parse_ollama_host("gpu:7000", default_port=11500) == ("gpu", 7000)
    assert parse_ollama_host("gpu", default_port=11500) == ("gpu", 11500)


def test_bad_port_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid port"):
        parse_ollama_host("gpu:99999")


def test_an_https_ollama_host_is_refused_at_start_with_a_clear_message():
    from app.config import load_settings

    with pytest.raises(SystemExit, match="plain HTTP"):
        load_settings({"OLLAMA_HOST": "https://ollama.example.com"})
    assert load_settings({"OLLAMA_HOST": "http://gpu:11500"})["SEED_OLLAMA_PORT"] == 11500


# -- OLLAMA_HOSTS -----------------------------------------------------------------------------------------------

from app.hostparse import NodeSpec, parse_ollama_hosts  # noqa: E402


def test_ollama_hosts_items_with_options():
    assert parse_ollama_hosts("http://gpu-a:11434?vram_gb=24&num_parallel=2, gpu-b:11500 ,gpu-c?name=c&weight=2.5"
                              ",[::1]:7000") == [
        NodeSpec("gpu-a", 11434, vram_gb=24.0, num_parallel=2),
        NodeSpec("gpu-b", 11500),
        NodeSpec("gpu-c", 11434, name="c", weight=2.5),
        NodeSpec("::1", 7000),
    ]


def test_ollama_hosts_default_port_and_default_names():
    specs = parse_ollama_hosts("gpu-a,gpu-b:1", default_port=9000)
    assert [(s.host, s.port, s.node_name) for s in specs] == [("gpu-a", 9000, "gpu-a:9000"), ("gpu-b", 1, "gpu-b:1")]
    assert parse_ollama_hosts("") == [] and parse_ollama_hosts(" , ") == []


@pytest.mark.parametrize("value,message", [
    ("gpu-a:11434,https://gpu-b:11434", "'https://gpu-b:11434' uses https://"),
    ("gpu-a:99999", "'gpu-a:99999' has an invalid port"),
    ("gpu-a?vram=24", "unknown option 'vram'"),
    ("gpu-a?vram_gb", "options must look like"),
    ("gpu-a?num_parallel=two", "num_parallel must be a whole number, got 'two'"),
    ("gpu-a?vram_gb=lots", "vram_gb must be a number"),
    ("?name=x", "has no host"),
])
def test_ollama_hosts_bad_items_are_named(value, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        parse_ollama_hosts(value)


def test_ollama_hosts_seed_the_pool_and_stop_the_start_on_a_bad_item():
    from app.config import load_settings

    settings = load_settings({"OLLAMA_HOSTS": "http://gpu-a:11434?vram_gb=24&num_parallel=2,gpu-b:11434",
                              "OLLAMA_HOST": "ignored:1"})
    assert [s.node_name for s in settings["SEED_OLLAMA_NODES"]] == ["gpu-a:11434", "gpu-b:11434"]
    assert (settings["SEED_OLLAMA_HOST"], settings["SEED_OLLAMA_PORT"]) == ("gpu-a", 11434)
    assert load_settings({"OLLAMA_HOST": "gpu:7000"})["SEED_OLLAMA_NODES"] == ()
    for value, message in (("a:1,a:1", "a:1: the same address"), ("a?name=b:2,b:2", "b:2: the same name"),
                           ("a?vram_gb=0", "a:11434: vram_gb: must be above 0"), ("x:1?num_parallel=300", "x:1"),
                           ("https://a", "https://")):
        with pytest.raises(SystemExit, match=message):
            load_settings({"OLLAMA_HOSTS": value})
