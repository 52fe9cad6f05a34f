"""Validation of what operators type into the config API and the dashboard."""
from __future__ import annotations

import ipaddress
import math
import re

# RFC 1123 labels; underscores are tolerated because Docker service names use them.
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
# Ollama's name alphabet: [host[:port]/][namespace/]model[:tag]
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/:]*$")


# Cloud metadata services answer on link-local addresses (169.254.169.254; AWS also on fd00:ec2::254, which is
# not link-local) and well-known names: a target there would hand instance credentials to whoever can change
# the config. Refused unless ALLOW_LINK_LOCAL_TARGETS=1.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                             "instance-data.ec2.internal"})
_allow_link_local = False  # ALLOW_LINK_LOCAL_TARGETS, set once at startup (the same in every worker)


def allow_link_local_targets(allowed: bool) -> None:
    """Apply the ALLOW_LINK_LOCAL_TARGETS setting (app.factory calls it once per process)."""
    global _allow_link_local
    _allow_link_local = bool(allowed)


def is_link_local_target(host: str) -> bool:
    """A link-local or cloud-metadata address or name (literals and the well-known names; no DNS lookup)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host.rstrip(".").lower() in _METADATA_NAMES
    if getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped
    return address in _METADATA_ADDRESSES or any(address in network for network in _LINK_LOCAL
                                                if network.version == address.version)


class ValidationError(ValueError):
    """A field failed validation; `field` names it for the error message and the form."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_host(value, field: str = "host", allow_link_local: bool | None = None) -> str:
    """A hostname, IPv4 or IPv6 literal (brackets allowed), with no scheme, path or port; link-local and cloud
    metadata targets only when allowed (default: the ALLOW_LINK_LOCAL_TARGETS setting)."""
    host = _host_syntax(value, field)
    allowed = _allow_link_local if allow_link_local is None else allow_link_local
    if not allowed and is_link_local_target(host):
        raise ValidationError(field, f"{host} is a link-local or cloud metadata address; set "
                                     "ALLOW_LINK_LOCAL_TARGETS=1 if it really is the backend")
    return host


def _host_syntax(value, field: str) -> str:
    if value is None:
        raise ValidationError(field, "is required")
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    host = value.strip(" ")
    if not host:
        raise ValidationError(field, "must not be empty")
    if len(host) > 253:
        raise ValidationError(field, "is longer than 253 characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in host):
        raise ValidationError(field, "must not contain spaces or control characters")
    if "://" in host or "/" in host:
        raise ValidationError(field, "must be a bare host name or IP address, without scheme or path")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    if ":" in literal:
        raise ValidationError(field, "must not contain a port (use the port field)")
    labels = literal.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise ValidationError(field, f"{host!r} is not a valid host name or IP address")
    return literal.rstrip(".")


def validate_port(value, field: str = "port") -> int:
    """An integer 1-65535 (numeric strings are accepted, as HTML forms send them)."""
    if value is None:
        raise ValidationError(field, "is required")
    if isinstance(value, bool):
        raise ValidationError(field, "must be an integer between 1 and 65535")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():  # not "²" or "٣"
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError(field, "must be an integer between 1 and 65535")
    return value


def validate_bool(value, field: str) -> bool:
    """A JSON boolean (or the strings forms send: true/false/on/off/1/0)."""
    if value is None:
        raise ValidationError(field, "is required")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "on", "1", "yes", "false", "off", "0", "no"}:
        return value.strip().lower() in {"true", "on", "1", "yes"}
    raise ValidationError(field, "must be true or false")


def _stripped_string(value, field: str) -> str:
    if value is None:
        raise ValidationError(field, "is required")
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    return value.strip()


def validate_model_name(value, field: str = "model_name") -> str:
    """1-256 characters of Ollama's model-name alphabet."""
    name = _stripped_string(value, field)
    if not 1 <= len(name) <= 256:
        raise ValidationError(field, "must be 1 to 256 characters long")
    if not _MODEL_NAME.match(name):
        raise ValidationError(field, f"{name!r} contains characters outside Ollama's model-name alphabet")
    return name


_NODE_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def validate_node_name(value, field: str = "name") -> str:
    """1-64 characters of [A-Za-z0-9._:-] (it labels metrics and the X-IntelliProxy-Node header)."""
    name = _stripped_string(value, field)
    if not _NODE_NAME.match(name):
        raise ValidationError(field, "must be 1 to 64 characters of letters, digits, '.', '_', ':' and '-'")
    return name


def _number(value, field: str, integer: bool = False):
    """A JSON number or the numeric string a form sends; never a boolean, NaN or infinity."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or value is None:
        raise ValidationError(field, f"must be {kind}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer and text.isascii() and text.lstrip("-").isdecimal() else float(text)
        except ValueError:
            raise ValidationError(field, f"must be {kind}") from None
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int if integer else (int, float)) or not math.isfinite(value):
        raise ValidationError(field, f"must be {kind}")
    return value


def validate_vram_gb(value, field: str = "vram_gb") -> float | None:
    """The node's GPU memory in GB: above 0 and at most 4096, or null/empty for "unknown"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value, field)
    if not 0 < number <= 4096:
        raise ValidationError(field, "must be above 0 and at most 4096 (GB), or empty when unknown")
    return float(number)


def validate_num_parallel(value, field: str = "num_parallel") -> int:
    """The node's OLLAMA_NUM_PARALLEL: an integer 1-256."""
    number = _number(value, field, integer=True)
    if not 1 <= number <= 256:
        raise ValidationError(field, "must be an integer between 1 and 256")
    return number


def validate_weight(value, field: str = "weight") -> float:
    """A preference between otherwise equal nodes: above 0 and at most 1000."""
    number = _number(value, field)
    if not 0 < number <= 1000:
        raise ValidationError(field, "must be above 0 and at most 1000")
    return float(number)


NODE_FIELDS = ("host", "port", "name", "enabled", "vram_gb", "num_parallel", "weight")
_NODE_CHECKS = {"name": validate_node_name, "host": validate_host, "port": validate_port,
                "enabled": validate_bool, "vram_gb": validate_vram_gb, "num_parallel": validate_num_parallel,
                "weight": validate_weight}


def check_node_fields(body: dict, partial: bool = False, allow_link_local: bool | None = None) -> tuple[dict, dict]:
    """Every given node field validated: (values that passed, {field: message} for those that did not).

    A new node needs host and port; with `partial` (PATCH) any subset will do. Unknown keys are errors too.
    `allow_link_local` as in validate_host (the seeds are checked before the setting is applied)."""
    known = ", ".join(NODE_FIELDS)
    checks = dict(_NODE_CHECKS, host=lambda value, field: validate_host(value, field, allow_link_local))
    errors = {name: f"is not a node field (known: {known})" for name in sorted(set(body) - set(NODE_FIELDS))}
    if partial and not body:
        errors["body"] = f"give at least one of {known}"
    values = {}
    for name in NODE_FIELDS:
        if name not in body and not partial and name in ("host", "port"):
            errors[name] = "is required"
        elif name in body:
            try:
                values[name] = checks[name](body[name], name)
            except ValidationError as exc:
                errors[name] = exc.message
    return values, errors


def validate_node_fields(body: dict, partial: bool = False, allow_link_local: bool | None = None) -> dict:
    """check_node_fields for the API: the values, or a ValidationError for the first bad field."""
    values, errors = check_node_fields(body, partial, allow_link_local)
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field])
    return values
