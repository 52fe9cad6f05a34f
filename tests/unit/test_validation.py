import pytest

from app.validation import (ValidationError, allow_link_local_targets, validate_bool, validate_host,
                            validate_model_name, validate_port)


@pytest.mark.parametrize("host,expected", [
    ("localhost", "localhost"), ("ollama.internal", "ollama.internal"), ("10.1.2.3", "10.1.2.3"),
    ("::1", "::1"), ("[fd00::1]", "fd00::1"), ("my_service", "my_service"), ("host.", "host"),
    ("169.253.255.255", "169.253.255.255"), ("metadata.example.com", "metadata.example.com"),
])
def test_valid_hosts(host, expected):
    assert validate_host(host) == expected


@pytest.mark.parametrize("host", ["", " ", "http://x", "x/y", "a b", "x\n", "x:80", "-bad", "a..b", None, 7,
                                  "x" * 254])
def test_invalid_hosts(host):
    with pytest.raises(ValidationError) as err:
        validate_host(host)
    assert err.value.field == "host"


LINK_LOCAL = ["169.254.169.254", "169.254.0.1", "[fe80::1]", "fe80::abcd%eth0", "febf::1", "fd00:ec2::254",
              "::ffff:169.254.169.254", "metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata.goog",
              "metadata", "instance-data.ec2.internal"]


@pytest.mark.parametrize("host", LINK_LOCAL)
def test_link_local_and_metadata_targets_are_refused_by_default(host):
    with pytest.raises(ValidationError) as err:
        validate_host(host)
    assert err.value.field == "host" and "ALLOW_LINK_LOCAL_TARGETS=1" in err.value.message


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "fd00:ec2::254", "metadata.google.internal"])
def test_link_local_targets_are_accepted_when_allowed(host):
    assert validate_host(host, allow_link_local=True)
    allow_link_local_targets(True)
    try:
        assert validate_host(host)
    finally:
        allow_link_local_targets(False)


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


def test_a_link_local_seed_target_stops_the_start_unless_allowed():
    from app.config import load_settings

    with pytest.raises(SystemExit, match="ALLOW_LINK_LOCAL_TARGETS=1"):
        load_settings({"OLLAMA_HOST": "http://169.254.169.254:80"})
    with pytest.raises(SystemExit, match="AIRLLM_HOST"):
        load_settings({"AIRLLM_HOST": "metadata.google.internal"})
    assert load_settings({"OLLAMA_HOST": "169.254.169.254", "ALLOW_LINK_LOCAL_TARGETS": "1"})["SEED_OLLAMA_HOST"] \
        == "169.254.169.254"


def test_a_link_local_node_seed_follows_the_setting_too():
    from app.config import load_settings

    with pytest.raises(SystemExit, match="OLLAMA_HOSTS item 169.254.169.254:11434: host: .*ALLOW_LINK_LOCAL_TARGETS"):
        load_settings({"OLLAMA_HOSTS": "gpu-a:11434,169.254.169.254:11434"})
    nodes = load_settings({"OLLAMA_HOSTS": "gpu-a:11434,[fe80::1]:11434", "ALLOW_LINK_LOCAL_TARGETS": "1"})
    assert [n.host for n in nodes["SEED_OLLAMA_NODES"]] == ["gpu-a", "fe80::1"]
