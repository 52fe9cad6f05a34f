import pytest

from app.validation import ValidationError, validate_bool, validate_host, validate_model_name, validate_port


@pytest.mark.parametrize("host,expected", [
    ("localhost", "localhost"), ("ollama.internal", "ollama.internal"), ("10.1.2.3", "10.1.2.3"),
    ("::1", "::1"), ("[fe80::1]", "fe80::1"), ("my_service", "my_service"), ("host.", "host"),
])
def test_valid_hosts(host, expected):
    assert validate_host(host) == expected


@pytest.mark.parametrize("host", ["", " ", "http://x", "x/y", "a b", "x\n", "x:80", "-bad", "a..b", None, 7,
                                  "x" * 254])
def test_invalid_hosts(host):
    with pytest.raises(ValidationError) as err:
        validate_host(host)
    assert err.value.field == "host"


@pytest.mark.parametrize("port,expected", [(1, 1), (65535, 65535), ("8080", 8080)])
def test_valid_ports(port, expected):
    assert validate_port(port) == expected


@pytest.mark.parametrize("port", [0, 65536, -1, "x", True, 1.5, None, "", "²", "٣٠٠٠"])
def test_invalid_ports(port):
    with pytest.raises(ValidationError):
        validate_port(port)


def test_booleans():
    assert validate_bool(True, "enabled") is True and validate_bool("off", "enabled") is False
    with pytest.raises(ValidationError):
        validate_bool(1.0, "enabled")


@pytest.mark.parametrize("name", ["llama3", "llama3.1:70b", "hf.co/org/model:Q4_K_M", "registry:5000/ns/m:tag"])
def test_valid_model_names(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 257, "a b", "<script>", ":tag", 5, None])
def test_invalid_model_names(name):
    with pytest.raises(ValidationError):
        validate_model_name(name)
