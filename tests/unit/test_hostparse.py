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
