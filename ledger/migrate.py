"""The schema of Kontor's database: installed whole into an empty database, taken forward by numbered migrations.

Two sources, one result:
- `schema.sql` (top level; ledger/schema.sql links to it) is the whole current schema, the one readable picture.
  It is applied to an EMPTY database only (no `merchants` table and no `schema_migrations`), in one transaction;
  every migration below is then recorded as `installed`: a new database needs none of them.
- `ledger/migrations/NNNN_<owner>_<name>.sql` take a database that exists forward, each once, in number order,
  each in its own transaction together with its row in `schema_migrations` (`migrated`, with the file's SHA-256).
  A failed migration rolls back alone: the ones before it stay applied and recorded, the start fails, and the
  next start tries it again. `<owner>` is the package whose section of schema.sql the migration changes (ledger,
  payments, dunning, desk); tests/unit/test_sql_ownership.py holds each migration to its owner's layer.
- A database from before versioned migrations (it has `merchants` but no `schema_migrations`: a release up to
  and including the last one that re-applied schema.sql whole and recorded its hash in `kontor_schema`) gets
  every migration: 0001-0003 are guarded (IF NOT EXISTS, DO blocks that look first) because those releases
  differ, and 0001 creates `schema_migrations` and drops `kontor_schema`.

tests/integration/test_migrations.py migrates the oldest released schema (tests/data/schemas/) and compares its
catalogue with a fresh install's: a change to schema.sql without the migration that makes it fails there.

Why each migration is a plain SQL file and not a function re-created from schema.sql at each start: one path for
every change (tables, functions, triggers), reviewed as one file, and a start on a current database only reads
`schema_migrations`. A changed function therefore needs a migration with its CREATE OR REPLACE, like a column.

Why a small runner and not a migration tool: Kontor talks to PostgreSQL through asyncpg only; Alembic needs
SQLAlchemy (and a sync driver or its async engine), yoyo-migrations a DB-API driver, Flyway, Liquibase, sqitch
or dbmate a separate program beside the wheel. What Kontor needs is short: ordered files, a table, the advisory
lock it already took at start, checksums, and the empty-database install from schema.sql.

Concurrency: everything runs under the session advisory lock `SCHEMA_LOCK_KEY`; several instances (or `kontor`
commands) starting together queue on it, and those after the first find nothing left to do. The lock is a
session lock held across several transactions, so the connection must be a direct one, not a transaction-mode
pooler's. Migrations never run CREATE INDEX CONCURRENTLY or anything else that refuses a transaction block.

Refusals (SchemaError, the start fails, nothing is changed): the database records a migration this Kontor does
not have (it was migrated by a newer release: downgrades are restores), or an applied migration's file now has
another SHA-256 (a released migration was edited; write a new one instead).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "MIGRATIONS_DIR",
    "OWNERS",
    "SCHEMA_LOCK_KEY",
    "Migration",
    "Recorded",
    "SchemaError",
    "SchemaResult",
    "load_migrations",
    "migrate",
    "recorded",
    "schema_sql",
]

log = logging.getLogger("kontor.db")

SCHEMA_LOCK_KEY = 0x4B4F4E544F52  # 'KONTOR'
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
OWNERS = ("ledger", "payments", "dunning", "desk")  # the layers, lowest first (import-linter's contract)
_NAME = re.compile(r"^(?P<version>[0-9]{4})_(?P<owner>[a-z]+)_(?P<name>[a-z0-9_]+)\.sql$")


class SchemaError(Exception):
    """The database's schema cannot be brought to this Kontor's: the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: `version` (its number, from 1), `owner` (the package whose tables it changes),
    `name` (the file name without .sql), `sql` (its text) and `sha256` (hex of the UTF-8 text)."""

    version: int
    owner: str
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SchemaResult:
    """What `migrate` did: `how` is `installed` (schema.sql into an empty database), `migrated` (at least one
    migration applied) or `current` (nothing to do); `applied` the versions it applied (empty unless migrated)."""

    how: Literal["installed", "migrated", "current"]
    applied: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        return self.how != "current"


@dataclass(frozen=True, slots=True)
class Recorded:
    """A row of schema_migrations: how the migration got there (`installed` with schema.sql, or `migrated`),
    when (UTC), and the SHA-256 its file had."""

    version: int
    name: str
    how: str
    applied_at: datetime
    sha256: str


def schema_sql() -> str:
    """The text of schema.sql: ledger/schema.sql links to the repository's top-level file, and a wheel
    carries it as a plain file inside the package."""
    return (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in `directory`, by version. ValueError when a .sql file's name is not
    NNNN_<owner>_<name>.sql with a known owner, or two files share a version, or the versions have a gap."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None or match["owner"] not in OWNERS:
            raise ValueError(f"{path.name}: a migration is named NNNN_<{'|'.join(OWNERS)}>_<name>.sql")
        found.append(Migration(int(match["version"]), match["owner"], path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migration versions must run 1, 2, 3, ... without gaps or repeats: {versions}")
    return found


async def migrate(conn: Connection, migrations: Sequence[Migration] | None = None) -> SchemaResult:
    """Bring the database of `conn` to the current schema (see the module docstring): install schema.sql into an
    empty database, else apply the migrations it has not recorded. `migrations` defaults to ledger/migrations/.
    SchemaError when the database is ahead of this Kontor or an applied migration was edited."""
    known = list(load_migrations() if migrations is None else migrations)
    await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_KEY)
    try:
        has_table = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not has_table and not await conn.fetchval("SELECT to_regclass('merchants') IS NOT NULL"):
            await _install(conn, known)
            return SchemaResult("installed")
        applied: dict[int, str] = {}
        if has_table:
            applied = {
                r["version"]: r["sha256"] for r in await conn.fetch("SELECT version, sha256 FROM schema_migrations")
            }
        _check(applied, known)
        pending = [m for m in known if m.version not in applied]
        for migration in pending:
            async with conn.transaction():
                await conn.execute("SET LOCAL client_min_messages = warning")
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256, how) VALUES ($1, $2, $3, 'migrated')",
                    migration.version,
                    migration.name,
                    migration.sha256,
                )
            log.info("migration applied", extra={"migration": migration.name})
        return SchemaResult("migrated", tuple(m.version for m in pending)) if pending else SchemaResult("current")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK_KEY)


async def recorded(conn: Connection) -> list[Recorded] | None:
    """The migrations the database records, by version, without changing anything; None when it has no
    schema_migrations table (an empty database, or one from before versioned migrations)."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return None
    rows = await conn.fetch("SELECT version, name, how, applied_at, sha256 FROM schema_migrations ORDER BY version")
    return [Recorded(r["version"], r["name"], r["how"], r["applied_at"], r["sha256"]) for r in rows]


async def _install(conn: Connection, known: Sequence[Migration]) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL client_min_messages = warning")
        await conn.execute(schema_sql())
        await conn.executemany(
            "INSERT INTO schema_migrations (version, name, sha256, how) VALUES ($1, $2, $3, 'installed')",
            [(m.version, m.name, m.sha256) for m in known],
        )
    log.info("schema installed", extra={"migrations": len(known)})


def _check(applied: dict[int, str], known: Sequence[Migration]) -> None:
    by_version = {m.version: m for m in known}
    ahead = sorted(set(applied) - set(by_version))
    if ahead:
        raise SchemaError(
            f"the database records migration {ahead[-1]}, newer than this Kontor's last ({len(known)}): it was "
            "migrated by a newer release; run that release, or restore the backup taken before the upgrade"
        )
    edited = [by_version[v].name for v, sha in sorted(applied.items()) if by_version[v].sha256 != sha]
    if edited:
        raise SchemaError(
            f"migration {edited[0]} was applied with other contents than this Kontor's file: a released "
            "migration must not change (add a new one)"
        )
