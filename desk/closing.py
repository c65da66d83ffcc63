"""Month-end closing: on the n-th working day of a month, close the month before for every business code.

The n-th working day (Monday to Friday; public holidays are not known here) leaves time for the previous
month's late settlement files and bank statements. Closing is idempotent and serialized per business code in
PostgreSQL, so the job may run in every instance; `period.closed` goes out once per month closed.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from ledger.context import Kontor
from ledger.periods import close_period
from ledger.tenancy import get_business

__all__ = ["close_due_months", "working_day_of_month"]

log = logging.getLogger("kontor.closing")


def working_day_of_month(day: date) -> int:
    """1 for the month's first Monday-to-Friday day, 2 for the second, ...; 0 on Saturdays and Sundays."""
    if day.weekday() >= 5:
        return 0
    return sum(1 for n in range(1, day.day + 1) if day.replace(day=n).weekday() < 5)


async def close_due_months(ctx: Kontor, *, today: date, workday: int, merchant_id: int | None = None) -> list[str]:
    """Close last month for every business code not closed through it, if `today` is the `workday`-th working
    day (0: never). Returns "merchant/business" of each business code closed."""
    if workday <= 0 or working_day_of_month(today) != workday:
        return []
    last = today.replace(day=1) - timedelta(days=1)
    rows = await ctx.pool.fetch(
        "SELECT merchant_id, business FROM businesses WHERE (closed_through IS NULL OR closed_through < $1) "
        "AND ($2::bigint IS NULL OR merchant_id = $2) ORDER BY merchant_id, business",
        last,
        merchant_id,
    )
    closed = []
    for r in rows:
        try:
            await close_period(ctx, await get_business(ctx, r["merchant_id"], r["business"]), f"{last:%Y-%m}",
                               "month-end closing")  # fmt: skip
            closed.append(f"{r['merchant_id']}/{r['business']}")
        except Exception:  # one business code's failure must not stop the others
            log.exception(
                "month-end closing failed", extra={"merchant_id": r["merchant_id"], "business": r["business"]}
            )
    if closed:
        log.info("month-end closing", extra={"period": f"{last:%Y-%m}", "closed": len(closed)})
    return closed
