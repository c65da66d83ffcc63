"""Key rotation against the suite's PostgreSQL: a scratch table registered as a SealedColumn, sealed with key A,
re-sealed with key B (A previous) by the function `kontor secrets rotate` calls, then by the command itself."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from click.testing import CliRunner, Result
from litestar.plugins import InitPluginProtocol

from ledger import cli, cli_ops
from ledger.app import create_app
from ledger.config import Settings
from ledger.rotation import count_unopenable, rotate_sealed_columns
from ledger.secrets import SealedColumn, SecretBox, generate_key, parse_key
from tests.conftest import running

pytestmark = pytest.mark.timeout(120)

ROWS = 250  # three batches of 100 and a partial one
A, B, C, D = (generate_key() for _ in range(4))


def box(*keys: str) -> SecretBox:
    return SecretBox([parse_key(k, "test key") for k in keys])


def plaintext(tenant: int, slot: str) -> bytes:
    return f"-----BEGIN PRIVATE KEY----- {tenant}/{slot} secret-{tenant * 7919}".encode()


@pytest.fixture
async def column(pool: asyncpg.Pool) -> AsyncIterator[SealedColumn]:
    """A scratch table (tenant, slot) -> secret; ROWS values sealed with key A, one NULL."""
    table = f"scratch_sealed_{secrets.token_hex(4)}"
    await pool.execute(f"CREATE TABLE {table} (tenant int, slot text, secret text, PRIMARY KEY (tenant, slot))")
    sealed = SealedColumn(table, "secret", ("tenant", "slot"))
    rows = [(n % 7, f"s{n:04d}") for n in range(ROWS)]
    old = box(A)
    values = [(t, s, old.seal(plaintext(t, s), sealed.context_for({"tenant": t, "slot": s}))) for t, s in rows]
    await pool.executemany(f"INSERT INTO {table} VALUES ($1, $2, $3)", values)
    await pool.execute(f"INSERT INTO {table} VALUES (99, 'empty', NULL)")
    try:
        yield sealed
    finally:
        await pool.execute(f"DROP TABLE {table}")


async def stored(pool: asyncpg.Pool, column: SealedColumn) -> dict[tuple[int, str], str | None]:
    rows = await pool.fetch(f"SELECT tenant, slot, secret FROM {column.table}")
    return {(r["tenant"], r["slot"]): r["secret"] for r in rows}


def assert_all_open(values: dict[tuple[int, str], str | None], column: SealedColumn, with_box: SecretBox) -> None:
    for (tenant, slot), value in values.items():
        if value is None:
            continue
        assert with_box.is_current(value)
        assert with_box.open(value, column.context_for({"tenant": tenant, "slot": slot})) == plaintext(tenant, slot)


async def test_rotation_reseals_every_value_with_the_current_key(pool: asyncpg.Pool, column: SealedColumn) -> None:
    rotated = box(B, A)
    before = await stored(pool, column)
    [preview] = await rotate_sealed_columns(pool, rotated, [column], dry_run=True, batch_rows=100)
    assert (preview.column, preview.resealed, preview.current, preview.failed) == (column.name, ROWS, 0, [])
    assert await stored(pool, column) == before  # a dry run writes nothing
    assert await count_unopenable(pool, box(B), [column]) == {column.name: ROWS}

    [done] = await rotate_sealed_columns(pool, rotated, [column], batch_rows=100)
    assert (done.resealed, done.current, done.failed) == (ROWS, 0, [])
    after = await stored(pool, column)
    assert after[(99, "empty")] is None
    assert_all_open(after, column, box(B))  # key A is no longer needed
    assert await count_unopenable(pool, box(B), [column]) == {}

    [again] = await rotate_sealed_columns(pool, rotated, [column], batch_rows=100)
    assert (again.resealed, again.current, again.failed) == (0, ROWS, [])
    assert await stored(pool, column) == after


async def test_values_that_do_not_open_are_named_by_their_row_and_left_alone(
    pool: asyncpg.Pool, column: SealedColumn
) -> None:
    unknown = box(C).seal(b"sealed with a key nobody configured", column.context_for({"tenant": 50, "slot": "c"}))
    moved = (await stored(pool, column))[(0, "s0000")]  # copied into another row: its context differs
    await pool.executemany(
        f"INSERT INTO {column.table} VALUES ($1, $2, $3)",
        [(50, "c", unknown), (51, "moved", moved), (52, "plain", "a plaintext secret")],
    )
    [result] = await rotate_sealed_columns(pool, box(B, A), [column], batch_rows=100)
    assert result.resealed == ROWS
    assert [f.split(":")[0] for f in result.failed] == [
        "tenant=50, slot=c",
        "tenant=51, slot=moved",
        "tenant=52, slot=plain",
    ]
    assert "not configured" in result.failed[0]
    assert "does not open" in result.failed[1]
    assert "not a sealed value" in result.failed[2]
    assert not any("a plaintext secret" in f or moved in f or unknown in f for f in result.failed)
    after = await stored(pool, column)
    assert (after[(50, "c")], after[(51, "moved")], after[(52, "plain")]) == (unknown, moved, "a plaintext secret")
    assert await count_unopenable(pool, box(B, A), [column]) == {column.name: 2}  # key C's and the plaintext


async def test_a_value_written_while_rotation_waits_for_its_row_is_not_lost(
    pool: asyncpg.Pool, column: SealedColumn
) -> None:
    context = column.context_for({"tenant": 0, "slot": "s0000"})
    async with pool.acquire() as writer, writer.transaction():
        await writer.execute(f"SELECT 1 FROM {column.table} WHERE tenant = 0 AND slot = 's0000' FOR UPDATE")
        rotation = asyncio.create_task(rotate_sealed_columns(pool, box(B, A), [column], batch_rows=100))
        await asyncio.sleep(0.5)
        assert not rotation.done()  # the first batch waits for the writer's row
        new_value = box(A).seal(b"a new private key", context)  # an instance not yet restarted with key B
        await writer.execute(f"UPDATE {column.table} SET secret = $1 WHERE tenant = 0 AND slot = 's0000'", new_value)
    [result] = await rotation
    assert (result.resealed, result.failed) == (ROWS, [])
    value = (await stored(pool, column))[(0, "s0000")]
    assert value is not None
    assert box(B).open(value, context) == b"a new private key"


class ScratchPlugin(InitPluginProtocol):
    """A plugin that registers the scratch column, as payments will register its own."""

    def __init__(self, column: SealedColumn) -> None:
        self.column = column

    def sealed_columns(self) -> list[SealedColumn]:
        return [self.column]


async def test_the_service_logs_values_no_configured_key_opens_at_start(
    settings: Settings, column: SealedColumn, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance started with another key than the one that sealed (its own default key file, say) says so."""
    application = create_app(replace(settings, secret_key=B, db_pool_size_max=2), plugins=[ScratchPlugin(column)])
    logging.getLogger().addHandler(caplog.handler)  # create_app configured logging afresh
    async with running(application):
        pass
    [error] = [r for r in caplog.records if r.name == "kontor.app" and r.levelno == logging.ERROR]
    assert error.getMessage().startswith(f"{ROWS} values in {column.name} are sealed with keys this process does not")
    assert box(B).key_id in error.getMessage()


async def test_the_command_rotates_and_exits_1_naming_rows_that_do_not_open(
    pool: asyncpg.Pool, column: SealedColumn, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the installed plugins register no scratch column: the command sees only this test's
    monkeypatch.setattr(cli_ops, "discover_plugins", lambda: [ScratchPlugin(column)])

    async def kontor(*args: str, current: str, previous: str = "") -> Result:
        env = {
            "KONTOR_DATABASE_URL": database_url,
            "KONTOR_SECRET_KEY": current,
            "KONTOR_SECRET_KEYS_PREVIOUS": previous,
        }
        env |= {"KONTOR_SECRET_KEY_FILE": "", "KONTOR_LOG_LEVEL": "WARNING"}
        # in a thread: the command runs its own event loop, the suite's keeps serving the pool
        return await asyncio.to_thread(CliRunner(env=env).invoke, cli.main, ["secrets", "rotate", *args])

    preview = await kontor("--dry-run", current=B, previous=A)
    assert preview.exit_code == 0, preview.output
    assert preview.output.splitlines() == [
        f"current key {box(B).key_id} (dry run: nothing is written)",
        f"{column.name}: {ROWS} to re-seal, 0 already current, 0 do not open",
    ]
    done = await kontor("--batch-size", "64", current=B, previous=A)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[1] == f"{column.name}: {ROWS} re-sealed, 0 already current, 0 do not open"
    assert_all_open(await stored(pool, column), column, box(B))

    stray = box(D).seal(b"stray secret", column.context_for({"tenant": 60, "slot": "d"}))
    await pool.execute(f"INSERT INTO {column.table} VALUES (60, 'd', $1)", stray)
    failed = await kontor(current=C, previous=B)
    assert failed.exit_code == 1, failed.output
    lines = failed.output.splitlines()
    assert lines[1] == f"{column.name}: {ROWS} re-sealed, 0 already current, 1 do not open"
    assert lines[2].startswith(f"  does not open: tenant=60, slot=d: sealed with key {box(D).key_id}")
    assert stray not in failed.output
    assert stray.split(".")[3] not in failed.output
    assert_all_open({k: v for k, v in (await stored(pool, column)).items() if k != (60, "d")}, column, box(C))
