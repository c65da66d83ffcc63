"""Tamper evidence: the hash chain links every entry once and `verify` finds what was forced past the triggers.

Method: post through the API, link, verify; then act as a superuser who disables the append-only
triggers and edits, deletes or inserts rows, and check that verify names the first broken link.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from ledger.chain import link_pending, verify_chain
from ledger.context import Kontor
from ledger.tenancy import get_business
from tests.conftest import Tenant


async def link_all(pool: asyncpg.Pool) -> None:
    while await link_pending(pool):
        pass


@asynccontextmanager
async def triggers_disabled(conn: asyncpg.Connection, *tables: str) -> AsyncIterator[None]:
    """What only a superuser can do: switch the append-only triggers off for a moment."""
    for t in tables:
        await conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
    try:
        yield
    finally:
        for t in tables:
            await conn.execute(f"ALTER TABLE {t} ENABLE TRIGGER USER")


async def verify(ctx: Kontor, t: Tenant) -> dict[str, object]:
    result = await verify_chain(ctx.pool, await get_business(ctx, t.merchant_id, t.business))
    return {
        "ok": result.ok,
        "chained": result.chained,
        "unchained": result.unchained,
        "entries": result.entries,
        "totals": result.balances_match_lines,
        "broken": None if result.first_broken is None else (result.first_broken.entry_id, result.first_broken.reason),
    }


async def post_some(t: Tenant, n: int) -> list[int]:
    return [(await t.sale(f"C-{i}", "119.00", "100.00", "19.00"))["id"] for i in range(n)]


async def test_every_entry_is_linked_once_and_verifies(ctx: Kontor, tenant: Tenant) -> None:
    await post_some(tenant, 5)
    before = await verify(ctx, tenant)
    assert before["unchained"] == 5
    assert before["ok"] is True  # not yet linked is not broken
    await link_all(ctx.pool)
    assert await verify(ctx, tenant) == {
        "ok": True,
        "chained": 5,
        "unchained": 0,
        "entries": 5,
        "totals": True,
        "broken": None,
    }
    await post_some(tenant, 3)
    await link_all(ctx.pool)
    assert (await verify(ctx, tenant))["chained"] == 8


async def test_concurrent_postings_are_all_linked_exactly_once(ctx: Kontor, tenant: Tenant) -> None:
    async def poster() -> None:
        await post_some(tenant, 5)

    async def linker() -> None:
        for _ in range(20):
            await link_pending(ctx.pool)
            await asyncio.sleep(0)

    await asyncio.gather(*(poster() for _ in range(8)), linker(), linker())
    await link_all(ctx.pool)
    result = await verify(ctx, tenant)
    assert result["ok"] is True
    assert result["chained"] == 40
    duplicates = await ctx.pool.fetchval(
        "SELECT count(*) - count(DISTINCT entry_id) FROM chain_links WHERE merchant_id = $1", tenant.merchant_id
    )
    assert duplicates == 0


async def test_changed_line_is_detected(ctx: Kontor, tenant: Tenant) -> None:
    ids = await post_some(tenant, 4)
    await link_all(ctx.pool)
    async with ctx.pool.acquire() as conn, triggers_disabled(conn, "lines"):
        await conn.execute(
            "UPDATE lines SET amount_minor = amount_minor + 100 WHERE merchant_id = $1 AND entry_id = $2 "
            "AND line_no = 1",
            tenant.merchant_id,
            ids[2],
        )
    result = await verify(ctx, tenant)
    assert result["ok"] is False
    assert result["broken"] == (ids[2], "the entry or its lines were changed after posting")
    assert result["totals"] is False  # the balance slots no longer equal the lines either


async def test_changed_entry_field_is_detected(ctx: Kontor, tenant: Tenant) -> None:
    ids = await post_some(tenant, 3)
    await link_all(ctx.pool)
    async with ctx.pool.acquire() as conn, triggers_disabled(conn, "entries"):
        await conn.execute(
            "UPDATE entries SET description = 'innocent' WHERE merchant_id = $1 AND entry_id = $2",
            tenant.merchant_id,
            ids[1],
        )
    assert (await verify(ctx, tenant))["broken"] == (ids[1], "the entry or its lines were changed after posting")


async def test_changed_hash_and_content_together_breaks_the_link(ctx: Kontor, tenant: Tenant) -> None:
    """An attacker who recomputes the content hash still cannot fix the chain without rewriting every link."""
    from ledger.domain import EntryDraft, stored_content_sha256

    ids = await post_some(tenant, 3)
    await link_all(ctx.pool)
    row = await ctx.pool.fetchrow(
        "SELECT effective_date, reference, metadata, reverses FROM entries WHERE merchant_id = $1 AND entry_id = $2",
        tenant.merchant_id,
        ids[0],
    )
    lines = [
        (r["account_id"], r["customer"], r["side"], r["amount_minor"], r["currency"])
        for r in await ctx.pool.fetch(
            "SELECT account_id, customer, side, amount_minor, currency FROM lines WHERE merchant_id = $1 AND entry_id = $2 "
            "ORDER BY line_no",
            tenant.merchant_id,
            ids[0],
        )
    ]
    forged = stored_content_sha256(
        tenant.merchant_id,
        tenant.business,
        EntryDraft(
            effective_date=row["effective_date"],
            description="forged",
            lines=(),
            reference=row["reference"],
            metadata=row["metadata"],
            reverses=row["reverses"],
        ),
        lines,
    )
    async with ctx.pool.acquire() as conn, triggers_disabled(conn, "entries"):
        await conn.execute(
            "UPDATE entries SET description = 'forged', content_sha256 = $3 WHERE merchant_id = $1 AND entry_id = $2",
            tenant.merchant_id,
            ids[0],
            forged,
        )
    assert (await verify(ctx, tenant))["broken"] == (ids[0], "the link does not follow from its predecessor")


async def test_deleted_entry_is_detected(ctx: Kontor, tenant: Tenant) -> None:
    ids = await post_some(tenant, 3)
    await link_all(ctx.pool)
    async with ctx.pool.acquire() as conn, triggers_disabled(conn, "entries", "lines"):
        await conn.execute("DELETE FROM lines WHERE merchant_id = $1 AND entry_id = $2", tenant.merchant_id, ids[1])
        await conn.execute("DELETE FROM entries WHERE merchant_id = $1 AND entry_id = $2", tenant.merchant_id, ids[1])
    assert (await verify(ctx, tenant))["broken"] == (ids[1], "the linked entry has been deleted")


async def test_deleted_link_is_detected(ctx: Kontor, tenant: Tenant) -> None:
    await post_some(tenant, 3)
    await link_all(ctx.pool)
    async with ctx.pool.acquire() as conn, triggers_disabled(conn, "chain_links"):
        await conn.execute("DELETE FROM chain_links WHERE merchant_id = $1 AND seq = 2", tenant.merchant_id)
    result = await verify(ctx, tenant)
    assert result["ok"] is False
    assert result["broken"] is not None


async def test_entry_inserted_behind_the_chain_is_detected(ctx: Kontor, tenant: Tenant) -> None:
    """A row slipped in with an old transaction id would never be linked: verify must say so."""
    await post_some(tenant, 2)
    await link_all(ctx.pool)
    account = await ctx.pool.fetchval(
        "SELECT account_id FROM accounts WHERE merchant_id = $1 AND number = '1200'", tenant.merchant_id
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        entry_id = await conn.fetchval(
            "INSERT INTO entries (merchant_id, business, effective_date, description, content_sha256, xid) "
            "VALUES ($1, $2, '2026-11-20', 'slipped in', $3, '3'::xid8) RETURNING entry_id",
            tenant.merchant_id,
            tenant.business,
            bytes(32),
        )
        # the lines trigger insists on same-transaction lines; a superuser could switch it off
        await conn.execute("ALTER TABLE lines DISABLE TRIGGER lines_same_transaction")
        for no, side in ((1, "D"), (2, "C")):
            await conn.execute(
                "INSERT INTO lines (merchant_id, business, entry_id, line_no, account_id, side, amount_minor, currency, "
                "effective_date) VALUES ($1, $2, $3, $4, $5, $6, 1, 'EUR', '2026-11-20')",
                tenant.merchant_id,
                tenant.business,
                entry_id,
                no,
                account,
                side,
            )
        await conn.execute("ALTER TABLE lines ENABLE TRIGGER lines_same_transaction")
    await link_all(ctx.pool)
    result = await verify(ctx, tenant)
    assert result["broken"] == (entry_id, "entry is missing from the chain")


@pytest.mark.parametrize("instances", [3])
async def test_linkers_in_several_instances_do_not_collide(ctx: Kontor, tenant: Tenant, instances: int) -> None:
    await post_some(tenant, 6)
    counts = await asyncio.gather(*(link_pending(ctx.pool) for _ in range(instances)))
    await link_all(ctx.pool)
    assert sum(counts) >= 0
    assert (await verify(ctx, tenant))["chained"] == 6
