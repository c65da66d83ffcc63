"""PostgreSQL plumbing: pools, schema application, and the bounded retry policy.

Why: one place decides how Kontor talks to PostgreSQL. Pools are created by the composition roots
(app factory, CLI) and passed down; nothing here is global. Connections carry no session state that
outlives a transaction, so a pooler in transaction mode works (set db_statement_cache_size=0 there).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
import msgspec

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # a plain connection or one borrowed from a pool: both run the same queries
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

__all__ = [
    "CONNECTION_LOST",
    "RETRYABLE",
    "TEXT_REFUSED",
    "Connection",
    "apply_schema",
    "create_pool",
    "schema_sql",
    "transaction_retrying",
]

log = logging.getLogger("kontor.db")

# serialization failure, deadlock: safe to retry the whole transaction (bounded)
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
# the connection or the server went away (failover, restart, pg_terminate_backend, network). asyncpg raises
# InternalClientError/InterfaceError when a connection killed mid-operation is used before its socket closes.
# Whether a transaction in flight committed is unknown: only idempotent work may be retried.
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)
# text PostgreSQL cannot store: a NUL character (\u0000), also inside jsonb
TEXT_REFUSED = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
_SCHEMA_LOCK_KEY = 0x4B4F4E544F52  # 'KONTOR'
T = TypeVar("T")


async def transaction_retrying(pool: asyncpg.Pool, attempts: int, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` in one transaction; run it again (at most `attempts` times in all) when the database
    aborts it for a serialization failure or a deadlock, the only errors safe to retry whole."""
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except RETRYABLE:
            if attempt == attempts:
                raise
            log.info("transaction retried after a deadlock or serialization failure", extra={"attempt": attempt})
    raise AssertionError("unreachable")


def schema_sql() -> str:
    """The text of schema.sql: ledger/schema.sql links to the repository's top-level file, and a wheel
    carries it as a plain file inside the package."""
    return (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")


def _encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode)


async def _reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a connection needs before it goes back to the pool: no open transaction.

    asyncpg's default reset sends RESET ALL, UNLISTEN * and friends: a second round trip for every
    request. Kontor keeps no session state on pooled connections (only SET LOCAL, transaction-level
    advisory locks), so rolling back a transaction left open by an error is all that is needed.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    dsn: str,
    *,
    size_max: int,
    statement_cache_size: int = 100,
    command_timeout_s: float = 30.0,
    application_name: str = "kontor",
) -> asyncpg.Pool:
    """A pool with JSON codecs, synchronous commit and a per-statement timeout."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(2, size_max),
        max_size=size_max,
        statement_cache_size=statement_cache_size,
        command_timeout=command_timeout_s,
        max_inactive_connection_lifetime=300,
        init=_init_connection,
        reset=_reset,
        server_settings={"application_name": application_name, "synchronous_commit": "on", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


async def apply_schema(conn: Connection) -> bool:
    """Apply schema.sql unless this exact version is already applied; returns True when it ran.

    Serialized by an advisory lock, and run in one transaction: several instances starting at once
    apply it once, and a failed application leaves the old schema in place.
    """
    sql = schema_sql()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    await conn.execute("SELECT pg_advisory_lock($1)", _SCHEMA_LOCK_KEY)
    try:
        exists = await conn.fetchval("SELECT to_regclass('kontor_schema') IS NOT NULL")
        if exists and await conn.fetchval("SELECT true FROM kontor_schema WHERE sha256 = $1", digest):
            return False
        async with conn.transaction():
            await conn.execute("SET LOCAL client_min_messages = warning")
            await conn.execute(sql)
            await conn.execute("INSERT INTO kontor_schema (sha256) VALUES ($1) ON CONFLICT DO NOTHING", digest)
        log.info("schema applied", extra={"schema_sha256": digest})
        return True
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK_KEY)
