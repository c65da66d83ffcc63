"""PostgreSQL plumbing: pools, schema application, and the bounded retry policy.

Why: one place decides how Kontor talks to PostgreSQL. Pools are created by the composition roots
(app factory, CLI) and passed down; nothing here is global. Connections carry no session state that
outlives a transaction, so a pooler in transaction mode works (set db_statement_cache_size=0 there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
import msgspec

from ledger.errors import present
from ledger.migrate import migrate, schema_sql

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
    "apply_schema_at",
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
    return present(pool, "asyncpg.create_pool() awaited gives the pool")


async def apply_schema(conn: Connection) -> bool:
    """Bring the database to the current schema (ledger.migrate: schema.sql into an empty database, else the
    migrations it has not recorded); returns True when anything changed. Serialized by an advisory lock: several
    instances starting at once change it once. SchemaError when the database is ahead of this Kontor."""
    return (await migrate(conn)).changed


async def apply_schema_at(url: str) -> bool:
    """`apply_schema` on a connection of its own to `url`, without a pool's per-statement timeout
    (KONTOR_DB_COMMAND_TIMEOUT_S): a migration that rewrites a large table may take longer than a request."""
    conn = await asyncpg.connect(url)
    try:
        return await apply_schema(conn)
    finally:
        await conn.close()
