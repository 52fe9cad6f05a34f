"""Settings of the AirLLM server, read from the environment once (the only module that reads os.environ)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _number(env: dict, key: str, default, kind=int, what: str = "an integer"):
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key} must be {what}, got {raw!r}") from None


def _int(env: dict, key: str, default: int) -> int:
    return _number(env, key, default)


def _float(env: dict, key: str, default: float) -> float:
    return _number(env, key, default, float, "a number")


def _cache_mode(env: dict) -> str:
    from .layer_cache import parse_mode

    return parse_mode(env.get("AIRLLM_LAYER_CACHE", "").strip() or "auto", "AIRLLM_LAYER_CACHE")


def _default_shards_dir(env: dict) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "airllm-server" / "shards"


@dataclass(frozen=True)
class Settings:
    """Deployment settings. Tests build one directly or through `from_env` with a dict."""

    bind: str = "0.0.0.0"
    port: int = 8000
    models: str = ""                      # "name=/path,name2=/path2"
    models_file: str = ""                 # JSON or TOML registry with per-model options
    shards_dir: Path = field(default_factory=lambda: _default_shards_dir(os.environ))
    device: str = ""                      # "" = cuda:0 when available, else cpu
    max_queue: int = 8                    # waiting requests, the running batch not counted
    max_batch: int = 8                    # sequences sharing one sweep
    heartbeat_s: float = 5.0              # longest silence of a stream while waiting, loading or in a long pass
    switch_after_s: float = 30.0          # a request for another model stops newcomers joining after this wait
    threads: int = 0                      # gunicorn gthread threads; 0 = max_queue + 4
    timeout: int = 900                    # gunicorn worker timeout (s)
    keep_alive: str = "5m"                # default keep_alive, Ollama's
    num_ctx: int = 4096                   # default context window when a request gives none
    hub_offline: bool = True              # set HF_HUB_OFFLINE=1 unless the operator set it
    ollama_version: str = "0.12.0"        # what /api/version reports
    log_level: str = "INFO"
    layer_cache: str = "auto"             # off | auto | on: keep layers in host RAM (pinned on CUDA) after pass 1
    layer_cache_max_gb: float = 0.0       # cap on the cache in GiB; 0 = none beyond auto's 50% of MemAvailable

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Read AIRLLM_* variables (see docs/airllm-server.md for the table)."""
        env = dict(os.environ if env is None else env)
        max_queue = _int(env, "AIRLLM_MAX_QUEUE", 8)
        if max_queue < 0:
            raise ValueError("AIRLLM_MAX_QUEUE must be 0 or more")
        max_batch = _int(env, "AIRLLM_MAX_BATCH", 8)
        if max_batch < 1:
            raise ValueError("AIRLLM_MAX_BATCH must be 1 or more")
        heartbeat = _float(env, "AIRLLM_HEARTBEAT_S", 5.0)
        if heartbeat <= 0:
            raise ValueError("AIRLLM_HEARTBEAT_S must be positive")
        return cls(
            bind=env.get("AIRLLM_BIND", "").strip() or "0.0.0.0",
            port=_int(env, "AIRLLM_PORT", 8000),
            models=env.get("AIRLLM_MODELS", ""),
            models_file=env.get("AIRLLM_MODELS_FILE", "").strip(),
            shards_dir=Path(env["AIRLLM_SHARDS_DIR"]).expanduser() if env.get("AIRLLM_SHARDS_DIR", "").strip()
            else _default_shards_dir(env),
            device=env.get("AIRLLM_DEVICE", "").strip(),
            max_queue=max_queue,
            max_batch=max_batch,
            heartbeat_s=heartbeat,
            switch_after_s=_float(env, "AIRLLM_SWITCH_AFTER_S", 30.0),
            threads=_int(env, "AIRLLM_THREADS", 0),
            timeout=_int(env, "AIRLLM_TIMEOUT", 900),
            keep_alive=env.get("AIRLLM_KEEP_ALIVE", "").strip() or "5m",
            num_ctx=_int(env, "AIRLLM_NUM_CTX", 4096),
            hub_offline=env.get("AIRLLM_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no"),
            ollama_version=env.get("AIRLLM_OLLAMA_VERSION", "").strip() or "0.12.0",
            log_level=env.get("AIRLLM_LOG_LEVEL", "").strip().upper() or "INFO",
            layer_cache=_cache_mode(env),
            layer_cache_max_gb=_float(env, "AIRLLM_LAYER_CACHE_MAX_GB", 0.0),
        )

    def with_overrides(self, overrides: dict | None) -> "Settings":
        """Return a copy with some fields replaced (the factory's test hook)."""
        return replace(self, **(overrides or {}))

    @property
    def worker_threads(self) -> int:
        """Threads for gunicorn: every running or queued request holds one, plus room for /health and /api/tags."""
        return self.threads if self.threads > 0 else self.max_queue + self.max_batch + 4


def apply_process_env(settings: Settings) -> None:
    """Set process-wide variables the Hugging Face stack reads at import time."""
    if settings.hub_offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def hub_is_offline() -> bool:
    """Whether hub downloads are off for this process."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
