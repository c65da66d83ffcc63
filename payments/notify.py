"""Notifications to the merchant: written to the outbox in the transaction of the booking that caused them.

Delivery (signed webhooks with retries) reads the outbox; writing in the same transaction means a
notification exists exactly when its booking does.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from ledger.context import Kontor
from ledger.domain import Business
from ledger.money import format_amount

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["emit", "emit_balance", "emit_many", "emit_period_closed"]


async def emit(conn: Connection, business: Business, event_type: str, payload: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO outbox (merchant_id, business, type, payload) VALUES ($1, $2, $3, $4)",
        business.merchant_id,
        business.code,
        event_type,
        {"business": business.code, **payload},
    )


async def emit_many(conn: Connection, business: Business, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Several notifications in one statement (a dunning run writes two per notice)."""
    if events:
        await conn.execute(
            "INSERT INTO outbox (merchant_id, business, type, payload) SELECT $1, $2, u.type, u.payload "
            "FROM unnest($3::text[], $4::jsonb[]) AS u(type, payload)",
            business.merchant_id,
            business.code,
            [t for t, _ in events],
            [{"business": business.code, **p} for _, p in events],
        )


async def emit_balance(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    customer: str,
    reason: str,
    *,
    on: date,
    designation: str | None = None,
) -> None:
    """After a booking on a customer's account: the plugins' receivable hooks run (dunning recovers a
    written-off debt from a payment, first the order the payment names: `designation`), then balance.updated
    tells the merchant the account's state."""
    for hook in ctx.receivable_hooks:
        await hook(ctx, conn, business, customer, on, designation=designation)
    net = await conn.fetchval(
        "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0) FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND currency = $4",
        business.merchant_id,
        business.code,
        customer,
        business.currency,
    )
    net = int(net)
    state = "DEBIT" if net > 0 else "CREDIT" if net < 0 else "BALANCED"
    await emit(
        conn,
        business,
        "balance.updated",
        {
            "customer": customer,
            "balance": format_amount(abs(net), business.currency),
            "state": state,
            "currency": business.currency,
            "reason": reason,
        },
    )


async def emit_period_closed(ctx: Kontor, conn: Connection, business: Business, periods: list[str]) -> None:
    """`period.closed`, once per month newly closed, with where its G/L report is (JSON, CSV, XLSX, DATEV)."""
    report = "/v1/businesses/{code}/periods/{period}/gl-report"
    await emit_many(
        conn,
        business,
        [
            (
                "period.closed",
                {
                    "period": period,
                    "gl_report": {
                        f: report.format(code=business.code, period=period) + ("" if f == "json" else f"?format={f}")
                        for f in ("json", "csv", "xlsx", "datev")
                    },
                },
            )
            for period in periods
        ],
    )
