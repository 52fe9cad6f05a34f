"""Validation of what operators type into the config API and the dashboard."""
from __future__ import annotations

import ipaddress
import re

# RFC 1123 labels; underscores are tolerated because Docker service names use them.
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
# Ollama's name alphabet: [host[:port]/][namespace/]model[:tag]
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/:]*$")


class ValidationError(ValueError):
    """A field failed validation; `field` names it for the error message and the form."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_host(value, field: str = "host") -> str:
    """A hostname, IPv4 or IPv6 literal (brackets allowed), with no scheme, path or port."""
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


def validate_model_name(value, field: str = "model_name") -> str:
    """1-256 characters of Ollama's model-name alphabet."""
    if value is None:
        raise ValidationError(field, "is required")
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    name = value.strip()
    if not 1 <= len(name) <= 256:
        raise ValidationError(field, "must be 1 to 256 characters long")
    if not _MODEL_NAME.match(name):
        raise ValidationError(field, f"{name!r} contains characters outside Ollama's model-name alphabet")
    return name
