"""P6: a dunning run over N overdue customers.

Seeding (not measured): a merchant with a dunning policy and N customers, each with one claim of
10.00-209.99 EUR (revenue and VAT, through the ledger's posting function, 1,000 entries per call), due on
day 0. Measured, over HTTP on the running service (`POST .../dunning/runs`): the run of day 41, which
sends every customer the payment reminder (a notice and two notifications each, no booking), and the run
of day 70, which raises every customer to the first dunning level: the notice plus a fee entry and an
interest entry per customer (2N entries). P6 is the larger of the two.

Baseline, in the same run on the same database: the irreducible raw-SQL part — find the overdue
customers (one GROUP BY over the receivable lines) and write one notice row each (INSERT ... SELECT),
in a transaction that is rolled back.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from dunning.policy import LevelIn, PolicyIn, put_policy
from ledger import journal, tenancy
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import create_pool
from ledger.domain import EntryDraft, LineDraft, Side
from ledger.money import vat_from_gross
from ledger.schemas import BusinessCreate
from ledger.secrets import SecretBox, generate_key

__all__ = ["DAY0", "baseline", "run", "seed"]

DAY0 = date(2026, 1, 5)
_CHUNK = 1000


async def seed(dsn: str, customers: int) -> dict[str, Any]:
    pool = await create_pool(dsn, size_max=2)
    try:
        settings = Settings(database_url=dsn, secret_key=generate_key())  # seeding seals nothing
        ctx = Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=SecretBox.from_settings(settings))
        created = await tenancy.create_merchant(
            ctx, "P6 dunning shop", [BusinessCreate(code=1001, country="DE", currency="EUR")]
        )
        merchant = created.merchant_id
        key = await tenancy.issue_key(pool, merchant, "bench", "poster")
        business = await tenancy.get_business(ctx, merchant, 1001)
        roles = (await tenancy.account_index(ctx, business)).by_role
        levels = [LevelIn(days=1, payment_term_days=14), LevelIn(days=29, payment_term_days=14, fee="1.00")]
        await put_policy(ctx, business, PolicyIn(levels=levels))
        for start in range(0, customers, _CHUNK):
            drafts = []
            for i in range(start, min(customers, start + _CHUNK)):
                gross = 1000 + (i * 7919) % 20000
                tax = vat_from_gross(gross, Decimal(19))
                lines = (
                    LineDraft(roles["AR"], Side.DEBIT, gross, "EUR", f"D-{i:06d}"),
                    LineDraft(roles["REV_19"], Side.CREDIT, gross - tax, "EUR"),
                    LineDraft(roles["VAT_19"], Side.CREDIT, tax, "EUR"),
                )
                drafts.append(EntryDraft(DAY0, f"Invoice to D-{i:06d}", lines, f"inv-{i}"))
            await journal.post_entries(ctx, business, drafts, idem_key=None, request_sha256=bytes(32))
        await pool.execute("ANALYZE lines, entries")
        return {"merchant_id": merchant, "key": key.key, "customers": customers}
    finally:
        await pool.close()


def run(port: int, seeded: dict[str, Any], day: int) -> dict[str, Any]:
    started = time.perf_counter()
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/businesses/1001/dunning/runs",
        json={"as_of": (DAY0 + timedelta(days=day)).isoformat()},
        headers={"Authorization": f"Bearer {seeded['key']}"},
        timeout=900,
    )
    seconds = time.perf_counter() - started
    counts = r.json().get("counts", {}) if r.status_code == 200 else {}
    return {"seconds": seconds, "status": r.status_code, "notices": counts.get("notice", 0), "counts": counts}


async def baseline(dsn: str, seeded: dict[str, Any]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        ar = await conn.fetchval(
            "SELECT account_id FROM accounts WHERE merchant_id = $1 AND business = 1001 AND role = 'AR'",
            seeded["merchant_id"],
        )
        started = time.perf_counter()
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("CREATE TEMP TABLE p6_notices (customer text, owed bigint, pay_by date)")
            status = await conn.execute(
                "INSERT INTO p6_notices SELECT customer, sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor "
                "END), $3::date FROM lines WHERE merchant_id = $1 AND business = 1001 AND account_id = $2 "
                "GROUP BY customer HAVING sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END) > 0",
                seeded["merchant_id"],
                ar,
                DAY0 + timedelta(days=55),
            )
            seconds = time.perf_counter() - started
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return {"seconds": seconds, "notices": int(status.split()[-1])}
