"""Verify finishes in seconds on a journal that grew fast, whatever the statistics say (security-17).

On its own database: the journal tables are analyzed while empty, autovacuum is off (as on the system
PostgreSQL where it was seen), then 20,000 entries are posted. With the statistics of empty tables the planner
ran verify's counts as nested-loop anti joins, O(n^2): 79 s for 30,000 entries. And `kontor verify` reports a
timeout as one line, not a traceback.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from datetime import date
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ledger.chain import link_pending, verify_chain
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import apply_schema, create_pool
from ledger.domain import EntryDraft, LineDraft, Side
from ledger.journal import post_entries
from ledger.schemas import BusinessCreate
from ledger.secrets import SecretBox
from ledger.tenancy import account_index, create_merchant, get_business
from tests.conftest import SECRET_KEY

pytestmark = pytest.mark.timeout(240)
ENTRIES = 20_000


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    name = f"kontor_verify_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _grown_journal(ctx: Kontor) -> tuple[Kontor, int, int]:
    async with ctx.pool.acquire() as conn:
        await apply_schema(conn)
        for table in ("entries", "lines", "chain_links", "balance_totals", "account_totals"):
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off); ANALYZE {table}")
    created = await create_merchant(ctx, "Fast growth", [BusinessCreate(code=1001, country="DE", currency="EUR")])
    business = await get_business(ctx, created.merchant_id, 1001)
    accounts = (await account_index(ctx, business)).by_number
    draft = EntryDraft(
        date(2026, 11, 2),
        "bulk",
        (LineDraft(accounts["1200"], Side.DEBIT, 100, "EUR"), LineDraft(accounts["8400"], Side.CREDIT, 100, "EUR")),
    )
    for _ in range(ENTRIES // 1000):
        await post_entries(ctx, business, [draft] * 1000, idem_key=None, request_sha256=bytes(32))
    while await link_pending(ctx.pool):
        pass
    return ctx, created.merchant_id, business.code


async def test_verify_does_not_depend_on_fresh_statistics(fresh_url: str) -> None:
    pool = await create_pool(fresh_url, size_max=4, command_timeout_s=60)
    try:
        ctx, merchant_id, code = await _grown_journal(
            Kontor(pool=pool, reports_pool=pool, settings=Settings(), secrets=SecretBox([os.urandom(32)]))
        )
        started = time.monotonic()
        result = await verify_chain(pool, await get_business(ctx, merchant_id, code))
        elapsed = time.monotonic() - started
    finally:
        await pool.close()
    assert result.ok, result
    assert (result.entries, result.chained, result.unchained) == (ENTRIES, ENTRIES, 0)
    assert elapsed < 10, f"verify took {elapsed:.1f} s"


async def test_kontor_verify_reports_a_timeout_in_one_line(fresh_url: str) -> None:
    pool = await create_pool(fresh_url, size_max=2)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
        ctx = Kontor(pool=pool, reports_pool=pool, settings=Settings(), secrets=SecretBox([os.urandom(32)]))
        await create_merchant(ctx, "Slow", [BusinessCreate(code=1001, country="DE", currency="EUR")])
        async with pool.acquire() as conn, conn.transaction():
            # a verify that must wait: chain_watermark is locked by this transaction while the command runs
            await conn.execute("LOCK TABLE chain_links IN ACCESS EXCLUSIVE MODE")
            env = {k: v for k, v in os.environ.items() if not k.startswith("KONTOR_")}
            env |= {
                "KONTOR_DATABASE_URL": fresh_url,
                "KONTOR_DB_COMMAND_TIMEOUT_S": "1",
                "KONTOR_LOG_LEVEL": "WARNING",
                "KONTOR_SECRET_KEY": SECRET_KEY,
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ledger.cli", "verify", "--no-link-first", env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
    finally:
        await pool.close()
    assert proc.returncode == 1, (out, err)
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines() == [
        "Error: the database did not answer within 1 s (KONTOR_DB_COMMAND_TIMEOUT_S); nothing was changed by the "
        "statement that timed out [database_timeout]"
    ]
