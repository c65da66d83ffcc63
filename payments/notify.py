"""Notifications to the merchant: written to the outbox in the transaction of the booking that caused them.

Delivery (signed webhooks with retries) reads the outbox; writing in the same transaction means a
notification exists exactly when its booking does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.books import customer_balance
from ledger.context import Kontor
from ledger.domain import Business
from ledger.money import format_amount

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["emit", "emit_balance_updated", "emit_many", "emit_period_closed"]


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


async def emit_balance_updated(conn: Connection, business: Business, customer: str, reason: str) -> None:
    """`balance.updated` after a booking on a customer's account, inside its transaction: the balance in the
    business code's currency (a decimal string), DEBIT when the customer owes, CREDIT when in credit, else
    BALANCED; `reason` names the booking (payment.received, invoice.created, ...)."""
    net = await customer_balance(conn, business, customer)
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
