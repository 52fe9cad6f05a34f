"""Environment values the stored config does not use.

OLLAMA_HOST, AIRLLM_* and the like only seed an empty database; after that the database is the truth. When the
environment names a different value, the operator should hear about it (one log line at start, a notice on the
dashboard) instead of wondering why `OLLAMA_HOST=gpu-box:11434 ./run.sh` still talks to the old host.

`drift()` is pure (settings and a RoutingTable in, a list out); `use_environment()` writes one item through the
config setters, inside `config_store.apply_change`.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from .config_store import set_airllm_service, set_ollama_target
from .routing import Backend, RoutingTable

LABELS = {"ollama": "Ollama target", "airllm": "AirLLM service"}


@dataclass(frozen=True)
class Drift:
    """One stored setting the environment disagrees with: the compared fields as (field, value) pairs."""

    target: str  # "ollama" or "airllm": the config a click on "use the environment's value" changes
    variables: tuple[str, ...]  # the environment variables behind the environment's value
    env: tuple[tuple[str, object], ...]
    stored: tuple[tuple[str, object], ...]
    address: tuple[str, int]  # the stored host and port, to show a whole address when only one part differs

    @property
    def label(self) -> str:
        return LABELS[self.target]

    @property
    def env_text(self) -> str:
        return _text(dict(self.env), self.address)

    @property
    def stored_text(self) -> str:
        return _text(dict(self.stored), self.address)

    def describe(self) -> str:
        """The start-up log line."""
        return (f"The environment ({', '.join(self.variables)}) names the {self.label} {self.env_text}, but the "
                f"stored {self.stored_text} is in use: the environment only seeds an empty database. To switch, press "
                f"\"Use the environment's value\" on the dashboard's Overview or Connections page")


def _text(values: dict, address: tuple[str, int]) -> str:
    """`gpu-box:11434`, `enabled, gpu:8000`, ...: the fields a person compares, in a fixed order."""
    parts = []
    if "enabled" in values:
        parts.append("enabled" if values["enabled"] else "disabled")
    if "host" in values or "port" in values:
        host, port = values.get("host", address[0]), values.get("port", address[1])
        parts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if "use_airllm_default" in values:
        parts.append("AirLLM by default" if values["use_airllm_default"] else "Ollama by default")
    return ", ".join(parts)


def _item(target: str, variables: list[str], env: dict, stored: dict, address: Backend) -> list[Drift]:
    stored = {field: stored[field] for field in env}
    if not env or env == stored:
        return []
    return [Drift(target, tuple(variables), tuple(env.items()), tuple(stored.items()), (address.host, address.port))]


def drift(settings: dict, table: RoutingTable) -> list[Drift]:
    """The stored settings that differ from what the environment sets (variables it leaves unset never count:
    settings["SEED_FROM_ENV"] names those it set, see app.config.SEED_VARIABLES)."""
    given = settings.get("SEED_FROM_ENV", frozenset())
    ollama_vars, ollama_env = [], {}
    single = "OLLAMA_HOSTS" not in given  # a node pool is for a comparison node by node, not with one target
    if single and "OLLAMA_HOST" in given:  # a host without a port means OLLAMA_PORT (or 11434), as for the clients
        ollama_vars = ["OLLAMA_HOST"] + (["OLLAMA_PORT"] if "OLLAMA_PORT" in given else [])
        ollama_env = {"host": settings["SEED_OLLAMA_HOST"], "port": settings["SEED_OLLAMA_PORT"]}
    elif single and "OLLAMA_PORT" in given:
        ollama_vars, ollama_env = ["OLLAMA_PORT"], {"port": settings["SEED_OLLAMA_PORT"]}
    ollama_stored = {"host": table.ollama.host, "port": table.ollama.port}

    airllm_fields = {"AIRLLM_ENABLED": ("enabled", "SEED_AIRLLM_ENABLED", table.airllm_enabled),
                     "AIRLLM_HOST": ("host", "SEED_AIRLLM_HOST", table.airllm.host),
                     "AIRLLM_PORT": ("port", "SEED_AIRLLM_PORT", table.airllm.port),
                     "OLLAMA_USE_AIRLLM": ("use_airllm_default", "SEED_USE_AIRLLM_DEFAULT", table.use_airllm_default)}
    airllm_vars, airllm_env, airllm_stored = [], {}, {}
    for variable, (field, seed, stored) in airllm_fields.items():
        if variable in given:
            airllm_vars.append(variable)
            airllm_env[field], airllm_stored[field] = settings[seed], stored
    return (_item("ollama", ollama_vars, ollama_env, ollama_stored, table.ollama)
            + _item("airllm", airllm_vars, airllm_env, airllm_stored, table.airllm))


def use_environment(session: Session, item: Drift) -> None:
    """Store the environment's value of one drift item (run it through `config_store.apply_change`)."""
    values = dict(item.env)
    if item.target == "ollama":
        set_ollama_target(session, values.get("host"), values.get("port"))
    else:
        set_airllm_service(session, values.get("enabled"), values.get("host"), values.get("port"),
                           values.get("use_airllm_default"))
