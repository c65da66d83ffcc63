"""Service configuration, read once from the environment (KONTOR_*) by the composition roots.

Every limit is named with its unit last. Nothing reads os.environ anywhere else. A field whose metadata
carries a `range` (inclusive bounds) is range-checked when read from the environment: a value outside stops
the process at start with a message naming the variable and the range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

__all__ = ["Settings", "settings_from_env"]


T = TypeVar("T")
POSTING_HORIZON_DAYS_MAX = 3660  # ten years


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("kontor"))


@dataclass(frozen=True)
class Settings:
    """All settings; `from_env` maps KONTOR_<NAME> to each field."""

    database_url: str | None = None  # None: the embedded PostgreSQL in data_dir
    read_database_url: str | None = None  # reports may read from a replica; defaults to database_url
    data_dir: Path = field(default_factory=_default_data_dir)
    operator_key: str | None = None  # onboarding key for POST /v1/merchants
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    db_pool_size_max: int = 20
    db_statement_cache_size: int = 100  # 0 behind PgBouncer in transaction mode
    db_retry_attempts_max: int = 3
    db_command_timeout_s: float = 30.0
    rate_limit_per_second: int = 2000  # per API key and process
    request_body_bytes_max: int = 1_048_576
    balance_slots: int = 16
    key_cache_ttl_s: float = 2.0
    idempotency_retention_days: int = 30
    chain_interval_s: float = 1.0
    scheduler_enabled: bool = True
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    access_log: bool = True
    # secrets at rest (ledger.secrets): a key is the base64url text of 32 random bytes (`kontor secrets generate-key`)
    secret_key: str | None = field(default=None, repr=False)  # the current key; excludes secret_key_file
    secret_keys_previous: str | None = field(default=None, repr=False)  # comma-separated; only open old values
    secret_key_file: Path | None = None  # one key per line, current first, `#` comments; None: <data_dir>/secret.key
    api_docs: bool = False  # /schema as Swagger UI (scripts from a CDN, pinned with SRI): development only
    # effective dates later than today + this many days are refused (422 date_beyond_horizon): a typo in the
    # year must not book into the far future; 0 allows nothing after today
    posting_horizon_days: int = field(default=366, metadata={"range": (0, POSTING_HORIZON_DAYS_MAX)})
    # coalesced postings (ledger/coalesce.py): single-entry postings of one process that arrive within the window
    # share one round trip and one commit, at most this many per commit (1: each posting commits alone). At most
    # 64: each posting of a batch runs in a subtransaction, and PostgreSQL tracks at most 64 per transaction
    # cheaply (beyond, every other session's visibility checks slow down).
    post_coalesce_window_ms: float = field(default=1.0, metadata={"range": (0.0, 20.0)})
    post_coalesce_entries_max: int = field(default=32, metadata={"range": (1, 64)})
    # batches in flight per process: 1 measured best on 2 cores (while one commits, the next one fills)
    post_coalesce_in_flight_max: int = field(default=1, metadata={"range": (1, 64)})
    post_queue_depth_max: int = field(default=1000, metadata={"range": (1, 100_000)})  # waiting postings; 503 beyond
    # answer plain single-entry postings without Litestar's per-request layers (ledger/http/fastpath.py); off:
    # every request takes the Litestar route (the same answers, more CPU per posting)
    post_fast_path: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        return settings_from_env(cls, environ, **overrides)


def settings_from_env(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build a settings dataclass from KONTOR_<FIELD> variables (plugins use it for their own settings)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw = env.get(f"KONTOR_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        values[f.name] = _convert(f.type, raw, f.name)
        bounds = f.metadata.get("range")
        if bounds is not None and not bounds[0] <= values[f.name] <= bounds[1]:
            raise SystemExit(f"KONTOR_{f.name.upper()}={raw!r} must be between {bounds[0]} and {bounds[1]}")
    return replace(cls(**values), **overrides)  # type: ignore[type-var]


def _convert(type_name: object, raw: str, name: str) -> Any:
    text = str(type_name)
    try:
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if text == "bool":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if text in ("Path", "Path | None"):
            return Path(raw).expanduser()
    except ValueError:
        raise SystemExit(f"KONTOR_{name.upper()}={raw!r} is not a valid {text}") from None
    return raw
