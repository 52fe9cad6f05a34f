import pytest

from app.forwarded import TrustedProxyFix, parse_allowed


def _seen_client(app, remote, forwarded):
    seen = {}

    def inner(environ, start_response):
        seen["client"] = environ["REMOTE_ADDR"]
        return []

    TrustedProxyFix(inner, 1, app)({"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded,
                                    "wsgi.url_scheme": "http", "HTTP_HOST": "x"}, lambda *a: None)
    return seen["client"]


def test_forwarded_for_counts_only_from_allowed_addresses():
    assert _seen_client("127.0.0.1,::1", "127.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert _seen_client("127.0.0.1,::1", "10.1.2.3", "127.0.0.1") == "10.1.2.3"
    assert _seen_client("10.0.0.0/8", "10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert _seen_client("*", "192.0.2.1", "203.0.113.9") == "203.0.113.9"


def test_bad_allow_list_is_a_clear_startup_error():
    assert parse_allowed(" * ") is None
    with pytest.raises(SystemExit, match="FORWARDED_ALLOW_IPS"):
        parse_allowed("127.0.0.1,nginx")
