"""An account's register: its lines in date order with the running balance, page by page.

Pages are keyset-paged by (effective date, entry id, line number); each cursor carries the running balance the
page ended with, so pages read one after another always add up, even while a line dated before the cursor is
posted meanwhile (it shows in a listing started afresh). A cursor is client input: every value it carries is
checked against the column it is compared with (400 `cursor_invalid`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date

from ledger.context import Kontor
from ledger.domain import DATE_MAX, DATE_MIN, Account, Business
from ledger.errors import BadRequest
from ledger.money import format_amount
from ledger.reports import side_of
from ledger.schemas import RegisterOut, RegisterRow
from ledger.tenancy import get_account

__all__ = ["register"]


@dataclass(frozen=True, slots=True)
class _Position:
    day: date
    entry_id: int
    line_no: int


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the next register page starts, and the running balance (signed, debit-positive, minor units)
    the previous page ended with: later pages continue from it, so a line posted meanwhile with a date before
    the cursor changes neither the listing nor its balances (it shows in a listing started afresh)."""

    at: _Position
    balance_minor: int


_CURSOR_TEXT = re.compile(r"r([0-9]{4}-[0-9]{2}-[0-9]{2})/([0-9]{1,19})/([0-9]{1,5})/(-?[0-9]{1,40})")


def _encode_cursor(c: _Cursor) -> str:
    text = f"r{c.at.day.isoformat()}/{c.at.entry_id}/{c.at.line_no}/{c.balance_minor}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> _Cursor:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        match = _CURSOR_TEXT.fullmatch(text)
        if match is None:
            raise ValueError(cursor)
        day, entry_id, line_no, balance = match.groups()
        c = _Cursor(_Position(date.fromisoformat(day), int(entry_id), int(line_no)), int(balance))
        # the ranges of the columns it is compared with (date, bigint, smallint, a bigint sum): never a 500
        if not (
            DATE_MIN <= c.at.day <= DATE_MAX
            and c.at.entry_id < 2**63
            and c.at.line_no < 2**15
            and -(2**63) <= c.balance_minor < 2**63
        ):
            raise ValueError(cursor)
        return c
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor_invalid", "the cursor is not one this service issued") from None


async def _balance_before(
    ctx: Kontor, business: Business, account: Account, *, currency: str, customer: str | None, at: _Position
) -> int:
    """Signed (debit-positive) balance of every line ordered before position `at`."""
    lines_before = (
        "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0) FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND account_id = $3 AND currency = $4 "
    )
    if customer is not None:
        value = await ctx.reports_pool.fetchval(
            lines_before + "AND customer = $5 AND (effective_date, entry_id, line_no) < ($6, $7, $8)",
            business.merchant_id,
            business.code,
            account.account_id,
            currency,
            customer,
            at.day,
            at.entry_id,
            at.line_no,
        )
        return int(value)
    days = await ctx.reports_pool.fetchval(
        "SELECT COALESCE(sum(debit_minor) - sum(credit_minor), 0) FROM balance_totals "
        "WHERE merchant_id = $1 AND business = $2 AND account_id = $3 AND currency = $4 AND day < $5",
        business.merchant_id,
        business.code,
        account.account_id,
        currency,
        at.day,
    )
    same_day = await ctx.reports_pool.fetchval(
        lines_before + "AND effective_date = $5 AND (entry_id, line_no) < ($6, $7)",
        business.merchant_id,
        business.code,
        account.account_id,
        currency,
        at.day,
        at.entry_id,
        at.line_no,
    )
    return int(days) + int(same_day)


async def register(
    ctx: Kontor,
    business: Business,
    number: str,
    *,
    from_date: date | None,
    to_date: date | None,
    customer: str | None,
    currency: str | None,
    cursor: str | None,
    limit: int,
) -> RegisterOut:
    """An account's lines in date order with the running (historical) balance after each line.

    The first page's opening balance is everything before `from_date`; every later page continues from the
    balance carried in its cursor (see `_Cursor`), so pages read one after another always add up."""
    account = await get_account(ctx, business, number)
    cur = currency or business.currency
    if cursor:
        carried = _decode_cursor(cursor)
        start, running = carried.at, carried.balance_minor
    else:
        start = _Position(from_date or DATE_MIN, 0, 0)
        running = await _balance_before(ctx, business, account, currency=cur, customer=customer, at=start)
    opening = running
    rows = await ctx.reports_pool.fetch(
        "SELECT l.effective_date, l.entry_id, l.line_no, l.side, l.amount_minor, l.customer, e.description, "
        "e.reference, e.order_reference FROM lines l JOIN entries e USING (merchant_id, business, entry_id) "
        "WHERE l.merchant_id = $1 AND l.business = $2 AND l.account_id = $3 AND l.currency = $4 "
        "AND (l.effective_date, l.entry_id, l.line_no) >= ($5, $6, $7) "
        "AND ($8::date IS NULL OR l.effective_date <= $8) "
        "AND ($9::text IS NULL OR l.customer = $9) "
        "ORDER BY l.effective_date, l.entry_id, l.line_no LIMIT $10",
        business.merchant_id,
        business.code,
        account.account_id,
        cur,
        start.day,
        start.entry_id,
        start.line_no,
        to_date,
        customer,
        limit + 1,
    )
    out: list[RegisterRow] = []
    for r in rows[:limit]:
        amount = r["amount_minor"]
        running += amount if r["side"] == "D" else -amount
        text = format_amount(amount, cur)
        out.append(
            RegisterRow(
                entry_id=r["entry_id"],
                line_no=r["line_no"],
                effective_date=r["effective_date"],
                description=r["description"],
                reference=r["reference"],
                order_reference=r["order_reference"],
                customer=r["customer"],
                debit=text if r["side"] == "D" else None,
                credit=text if r["side"] == "C" else None,
                balance=format_amount(abs(running), cur),
                side=side_of(running),
            )
        )
    next_cursor = None
    if len(rows) > limit:
        nxt = rows[limit]
        next_cursor = _encode_cursor(
            _Cursor(_Position(nxt["effective_date"], nxt["entry_id"], nxt["line_no"]), running)
        )
    return RegisterOut(
        account=account.number,
        name=account.name,
        currency=cur,
        customer=customer,
        from_date=from_date,
        to_date=to_date,
        opening_balance=format_amount(abs(opening), cur),
        opening_side=side_of(opening),
        rows=out,
        next_cursor=next_cursor,
    )
