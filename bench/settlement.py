"""P5: an Amazon Pay settlement report of N capture rows (plus reserve and payout), parsed, booked, reconciled.

Seeding (not measured): a merchant with Amazon Pay settings and N one-step orders whose captures are
booked (Dr PSP / Cr AR, through the ledger's posting function, 1,000 entries per call) and mirrored,
as IPNs would have left them. The report is the simulator's layout and fees (1.9 % + 0.35 per capture,
5 % reserve, the rest paid out).

Measured: the upload over HTTP to the running service until its 201 answer. Baseline, in the same run on
the same database: the irreducible raw-SQL part of the same job — read the CSV with the csv module, COPY
the rows into a table and match them to the captures with one UPDATE ... FROM, in a transaction that is
rolled back so the service then finds the same state.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from ledger import journal, tenancy
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import create_pool
from ledger.domain import EntryDraft, LineDraft, Side
from ledger.money import format_amount
from ledger.schemas import BusinessCreate
from ledger.secrets import SecretBox, generate_key

__all__ = ["baseline", "seed", "upload"]

SELLER_ID = "ABENCHSELLER5"
_CHUNK = 1000


def _fee(amount: int) -> int:
    return -((amount * 19 + 500) // 1000) - 35


async def seed(dsn: str, rows: int, work_dir: Path) -> dict[str, Any]:
    """The merchant, its booked captures, and the report file; returns what the measurement needs."""
    pool = await create_pool(dsn, size_max=2)
    try:
        settings = Settings(database_url=dsn, secret_key=generate_key())  # seeding seals nothing
        ctx = Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=SecretBox.from_settings(settings))
        created = await tenancy.create_merchant(
            ctx, "P5 settlement shop", [BusinessCreate(code=1001, country="DE", currency="EUR")]
        )
        merchant = created.merchant_id
        key = await tenancy.issue_key(pool, merchant, "bench", "poster")
        business = await tenancy.get_business(ctx, merchant, 1001)
        roles = (await tenancy.account_index(ctx, business)).by_role
        amounts = [1000 + (i * 7919) % 20000 for i in range(rows)]  # 10.00 to 209.99 EUR
        orders = [f"p5-{i}" for i in range(rows)]
        captures = [f"P01-{i:07d}-{i:07d}-C000001" for i in range(rows)]
        await pool.execute(
            "INSERT INTO amazon_pay_settings (merchant_id, business, amazon_merchant_id, access, region, sandbox, "
            "payment_execution) VALUES ($1, 1001, $2, 'v1', 'eu', true, 'one_step')",
            merchant,
            SELLER_ID,
        )
        await pool.execute(
            "INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, charge_permission_id, "
            "payment_execution, status, gross_minor, bill_to, request_sha256) "
            "SELECT $1, 1001, o, c, '2026-11-20', r, 'one_step', 'captured', a, '{}', '\\x00' "
            "FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(o, c, r, a)",
            merchant,
            orders,
            [f"C-{i % 5000}" for i in range(rows)],
            [c.rsplit("-", 1)[0] for c in captures],
            amounts,
        )
        await pool.execute("ANALYZE orders")  # else the foreign-key checks of the COPY below scan orders
        entry_ids: list[int] = []
        for start in range(0, rows, _CHUNK):
            drafts = [
                EntryDraft(
                    date(2026, 11, 20),
                    f"Amazon Pay capture {captures[i]}, order {orders[i]}",
                    (
                        LineDraft(roles["PSP"], Side.DEBIT, amounts[i], "EUR"),
                        LineDraft(roles["AR"], Side.CREDIT, amounts[i], "EUR", f"C-{i % 5000}"),
                    ),
                    orders[i],
                    {"amazon_charge_id": captures[i]},
                )
                for i in range(start, min(rows, start + _CHUNK))
            ]
            posted = await journal.post_entries(ctx, business, drafts, idem_key=None, request_sha256=bytes(32))
            entry_ids += [e.id for e in posted.entries]
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "amazon_charges",
                columns=[
                    "merchant_id",
                    "business",
                    "order_ref",
                    "charge_id",
                    "charge_permission_id",
                    "amount_minor",
                    "captured_minor",
                    "state",
                    "entry_id",
                ],
                records=[
                    (
                        merchant,
                        1001,
                        orders[i],
                        captures[i],
                        captures[i].rsplit("-", 1)[0],
                        amounts[i],
                        amounts[i],
                        "Captured",
                        entry_ids[i],
                    )
                    for i in range(rows)
                ],
            )
            await conn.execute("ANALYZE amazon_charges")
    finally:
        await pool.close()
    path = work_dir / "p5-settlement.csv"
    path.write_text(_report(captures, orders, amounts))
    return {"merchant_id": merchant, "key": key.key, "file": str(path), "rows": rows}


def _report(captures: list[str], orders: list[str], amounts: list[int]) -> str:
    out = io.StringIO()
    out.write('"Amazon Payments Advanced",\n"Settlement Report",\n')
    out.write(f'"SellerId","{SELLER_ID}"\n')
    out.write('"SettlementStartDate","2026-11-20T00:00:00 +0000"\n"SettlementEndDate","2026-11-27T00:00:00 +0000"\n')
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=",\n")
    writer.writerow(
        [
            "TransactionPostedDate",
            "SettlementId",
            "AmazonTransactionId",
            "SellerReferenceId",
            "TransactionType",
            "AmazonOrderReferenceId",
            "SellerOrderId",
            "StoreName",
            "CurrencyCode",
            "TransactionDescription",
            "TransactionAmount",
            "TransactionPercentageFee",
            "TransactionFixedFee",
            "TotalTransactionFee",
            "NetTransactionAmount",
        ]
    )
    net_total = 0
    for i, capture in enumerate(captures):
        amount, fee = amounts[i], _fee(amounts[i])
        net_total += amount + fee
        writer.writerow(
            [
                "2026-11-21T10:00:00 +0000",
                "BENCH000001",
                capture,
                f"{orders[i]}-c1",
                "Capture",
                capture.rsplit("-", 1)[0],
                orders[i],
                "",
                "EUR",
                "",
                format_amount(amount, "EUR"),
                format_amount(fee + 35, "EUR"),
                "-0.35",
                format_amount(fee, "EUR"),
                format_amount(amount + fee, "EUR"),
            ]
        )
    reserve = sum(amounts) * 5 // 100
    for kind, text, amount in (
        ("Reserve", "Current Reserve Amount", -reserve),
        ("Transfer", "payout", reserve - net_total),
    ):
        writer.writerow(
            [
                "2026-11-27T00:00:00 +0000",
                "BENCH000001",
                "",
                "",
                kind,
                "",
                "",
                "",
                "EUR",
                text,
                format_amount(amount, "EUR"),
                "0.00",
                "0.00",
                "0.00",
                format_amount(amount, "EUR"),
            ]
        )
    return out.getvalue()


async def baseline(dsn: str, seeded: dict[str, Any]) -> dict[str, Any]:
    """Raw SQL: parse, COPY, one matching UPDATE; rolled back."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        text = await asyncio.to_thread(Path(seeded["file"]).read_text)
        records = []
        for n, cells in enumerate(csv.reader(io.StringIO(text))):
            if n >= 6 and cells and cells[4] == "Capture":
                records.append((cells[2], int(cells[10].replace(".", "")), int(cells[13].replace(".", ""))))
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("CREATE TEMP TABLE p5_rows (charge_id text, amount_minor bigint, fee_minor bigint)")
            await conn.copy_records_to_table("p5_rows", records=records)
            matched = await conn.execute(
                "UPDATE amazon_charges c SET settlement_id = 'BENCH000001' FROM p5_rows r "
                "WHERE c.merchant_id = $1 AND c.charge_id = r.charge_id AND c.captured_minor = r.amount_minor",
                seeded["merchant_id"],
            )
            seconds = time.perf_counter() - started
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return {"seconds": seconds, "matched": int(matched.split()[-1])}


def upload(port: int, seeded: dict[str, Any]) -> dict[str, Any]:
    body = Path(seeded["file"]).read_bytes()
    started = time.perf_counter()
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/businesses/1001/amazon-pay/settlements",
        content=body,
        headers={"Authorization": f"Bearer {seeded['key']}", "Content-Type": "text/csv"},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    out = r.json()
    return {
        "seconds": seconds,
        "status": r.status_code,
        "matched": out.get("outcomes", {}).get("matched", 0) if r.status_code == 201 else 0,
        "exceptions": out.get("exception_count"),
        "bytes": len(body),
    }
