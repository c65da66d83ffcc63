"""Periods are months: closing one (and every earlier one still open) under an exclusive advisory lock per business
code that each posting takes shared, so a close waits for postings in flight and later postings see the new close
date; only months that are over can be closed and nothing reopens. The period-end postings (VAT on prepayments)
are booked in the same transaction (plugins' `period_end` hooks); each close is recorded with who closed it and why.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from ledger.audit import record_action
from ledger.context import Kontor
from ledger.domain import (
    Business,
    month_end,
    parse_period,
)
from ledger.errors import (
    Conflict,
    present,
)
from ledger.schemas import PeriodCloseOut, PeriodOut

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["close_period", "list_periods"]


async def list_periods(ctx: Kontor, business: Business) -> list[PeriodOut]:
    rows = await ctx.reports_pool.fetch(
        "SELECT period, closed_at, closed_by FROM period_closes WHERE merchant_id = $1 AND business = $2 "
        "ORDER BY period",
        business.merchant_id,
        business.code,
    )
    return [
        PeriodOut(period=r["period"].strftime("%Y-%m"), closed_at=r["closed_at"], closed_by=r["closed_by"])
        for r in rows
    ]


async def close_period(
    ctx: Kontor, business: Business, period: str, closed_by: str, *, reason: str | None = None
) -> PeriodCloseOut:
    """Close a month that is over, and every earlier month; postings dated in them are refused after.

    Each month newly closed is an audit-trail action (`period.closed`) with `reason`, in the same transaction.
    """
    first = parse_period(period)
    last = month_end(first)
    if last >= ctx.today():
        raise Conflict("period_not_over", f"{period} ends on {last.isoformat()}; it can be closed from the next day on")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if ctx.period_closing_hooks:
            months = await _months_to_close(conn, business, first)
            if months:
                for closing in ctx.period_closing_hooks:
                    await closing(ctx, conn, business, months)
        closed_through = await conn.fetchval(
            "SELECT kontor_close_period($1, $2, $3, $4)", business.merchant_id, business.code, first, closed_by
        )
        # the function holds the business code's lock until this transaction ends: months inserted by it
        # are the rows stamped with this transaction's now()
        newly = await conn.fetch(
            "SELECT to_char(period, 'YYYY-MM') AS period FROM period_closes WHERE merchant_id = $1 "
            "AND business = $2 AND closed_at = now() ORDER BY period",
            business.merchant_id,
            business.code,
        )
        for month in newly:
            await record_action(
                conn, business.merchant_id, business.code, "period.closed", month["period"], reason=reason
            )
        if newly:
            for hook in ctx.period_closed_hooks:
                await hook(ctx, conn, business, [r["period"] for r in newly])
    return PeriodCloseOut(
        business=business.code, closed_through=closed_through, periods=await list_periods(ctx, business)
    )


async def _months_to_close(conn: Connection, business: Business, last_month: date) -> list[date]:
    """The months kontor_close_period is about to close, under the same lock it takes (held to commit)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(kontor_business_lock_key($1, $2))", business.merchant_id, business.code
    )
    row = await conn.fetchrow(
        "SELECT closed_through, (SELECT min(effective_date) FROM entries WHERE merchant_id = $1 AND business = $2) "
        "AS first_entry FROM businesses WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    row = present(row, "business codes are never deleted")
    if row["closed_through"] is not None:
        start = row["closed_through"] + timedelta(days=1)
    else:
        start = min(row["first_entry"] or last_month, last_month).replace(day=1)
    months = []
    while start <= last_month:
        months.append(start)
        start = month_end(start) + timedelta(days=1)
    return months
