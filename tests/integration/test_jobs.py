"""The scheduled maintenance jobs: they change how balances are stored or remembered, never what they say."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import asyncpg

from ledger.chain import link_pending, verify_chain
from ledger.context import Kontor
from ledger.scheduler import Jobs, analyze_stale_tables, compact_balance_slots, purge_idempotency_keys
from ledger.tenancy import get_business
from tests.conftest import Tenant


async def balances(t: Tenant) -> dict[str, object]:
    trial = (await t.get("/reports/trial-balance")).json()
    as_of = (await t.get("/reports/trial-balance", as_of="2026-11-02")).json()
    register = [r["balance"] for r in (await t.get("/accounts/1400/register")).json()["rows"]]
    customer = (await t.get("/customers/C-1/account")).json()
    return {"trial": trial, "as_of": as_of, "register": register, "customer": customer}


async def test_compaction_folds_old_slots_and_keeps_every_figure(
    ctx: Kontor, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    for day in ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-26", "2026-11-27"):
        for _ in range(12):  # one after the other: each is a commit of its own with a slot drawn at random
            await tenant.sale("C-1", "11.90", "10.00", "1.90", date=day)
    before = await balances(tenant)
    rows = "SELECT day, count(*) FROM balance_totals WHERE merchant_id = $1 AND account_id = (SELECT account_id FROM accounts WHERE merchant_id = $1 AND number = '1400') GROUP BY day ORDER BY day"
    spread = dict(await pool.fetch(rows, tenant.merchant_id))
    assert spread[max(spread)] > 1, "postings of one day used several slots"
    assert await compact_balance_slots(ctx) > 0  # the test clock's today is 2026-11-27
    after = dict(await pool.fetch(rows, tenant.merchant_id))
    assert {str(d): n for d, n in after.items() if str(d) < "2026-11-26"} == {
        "2026-11-01": 1,
        "2026-11-02": 1,
        "2026-11-03": 1,
    }
    assert after[max(after)] == spread[max(spread)], "yesterday and today keep their slots"
    assert await balances(tenant) == before
    await link_pending(pool)
    result = await verify_chain(pool, await get_business(ctx, tenant.merchant_id, tenant.business))
    assert result.balances_match_lines is True
    # postings into a compacted day still land in a slot and add up
    await tenant.sale("C-1", "11.90", "10.00", "1.90", date="2026-11-01")
    assert (await tenant.get("/customers/C-1/account")).json()["balance"] == "725.90"


async def test_purge_forgets_only_old_idempotency_keys(ctx: Kontor, pool: asyncpg.Pool, tenant: Tenant) -> None:
    lines = [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}]
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    await tenant.post_entry(lines, idem=old)
    await tenant.post_entry(lines, idem=new)
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '31 days' WHERE merchant_id = $1 AND idem_key = $2",
        tenant.merchant_id,
        old,
    )
    assert await purge_idempotency_keys(ctx) >= 1
    keys = {
        r["idem_key"]
        for r in await pool.fetch("SELECT idem_key FROM idempotency_keys WHERE merchant_id = $1", tenant.merchant_id)
    }
    assert keys == {new}
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", tenant.merchant_id) == 2


async def _grow(pool: asyncpg.Pool, rows: int) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'young_probe'"
        )
        await conn.execute(f"INSERT INTO young_probe SELECT generate_series(1, {rows})")
        for _ in range(50):  # the inserting backend publishes its counts at a transaction >= 1 s later
            mods = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'young_probe'"
            if await conn.fetchval(mods) > before:
                break
            await asyncio.sleep(0.1)


async def test_young_and_stale_tables_are_analyzed(ctx: Kontor, pool: asyncpg.Pool) -> None:
    """Also without autovacuum (security-17: off on the system PostgreSQL): a table that grew by a fifth since
    its last ANALYZE is analyzed again."""
    await pool.execute(
        "DROP TABLE IF EXISTS young_probe; CREATE TABLE young_probe (n int) WITH (autovacuum_enabled = off)"
    )
    try:
        assert await analyze_stale_tables(ctx, ("young_probe",)) == [], "empty: nothing to analyze"
        await _grow(pool, 2500)
        assert await analyze_stale_tables(ctx, ("young_probe",)) == ["young_probe"]
        assert await pool.fetchval(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'young_probe'"
        )
        assert await analyze_stale_tables(ctx, ("young_probe",)) == [], "fresh statistics: nothing to do"
        await _grow(pool, 100)
        assert await analyze_stale_tables(ctx, ("young_probe",)) == [], "a few rows more: still fresh enough"
        await _grow(pool, 3000)
        assert await analyze_stale_tables(ctx, ("young_probe",)) == ["young_probe"], "grew by more than a fifth"
    finally:
        await pool.execute("DROP TABLE young_probe")


async def test_scheduler_runs_the_jobs(ctx: Kontor, tenant: Tenant) -> None:
    await tenant.sale("C-1", "11.90", "10.00", "1.90")
    jobs = Jobs(replace(ctx, settings=replace(ctx.settings, chain_interval_s=0.05)))
    jobs.start()
    try:
        assert {j.id for j in jobs.scheduler.get_jobs()} == {
            "chain-journal",
            "purge-idempotency-keys",
            "analyze-stale-tables",
            "compact-balance-slots",
        }
        business = await get_business(ctx, tenant.merchant_id, tenant.business)
        for _ in range(100):
            if (await verify_chain(ctx.pool, business)).unchained == 0:
                break
            await asyncio.sleep(0.05)
        assert (await verify_chain(ctx.pool, business)).unchained == 0, "the chain job linked the entry"
    finally:
        jobs.stop()
