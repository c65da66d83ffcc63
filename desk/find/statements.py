"""Bank statements with their lines, matches, checks and open exceptions, keyset-paged."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from msgspec import Struct

from desk.find.cursors import decode_cursor, encode_cursor
from ledger.context import Kontor
from ledger.domain import Business
from ledger.money import currency_decimals, format_amount
from ledger.schemas import Page
from payments.bank import StatementRef
from payments.statement_checks import BalanceCheck

__all__ = ["BankStatementOut", "StatementException", "StatementLineOut", "bank_statement", "bank_statements"]


# --- bank statements -----------------------------------------------------------------------------------------
class StatementLineOut(Struct, kw_only=True):
    entry: int  # the entry's position in the statement (1-based)
    detail: int | None  # the payment's position in a batch entry that was split into its payments
    booking_date: date
    amount: str  # signed: + credit to the account, - debit
    outcome: str  # payout_cleared, payment, exception, pending
    match: str | None  # what it matched: a payout, an invoice or customer reference
    entry_id: int | None  # the journal entry that booked it
    counterparty_name: str | None = None  # the debtor of money in, the creditor of money out
    counterparty_iban: str | None = None
    remittance: str | None = None
    reference: str | None = None  # the bank's reference of the entry
    note: str | None = None  # a payment: what is still due, or what became the customer's credit
    exception_id: int | None = None  # the exception an unmatched line opened


class StatementException(Struct, kw_only=True):
    exception_id: int
    line: int
    kind: str
    amount: str
    state: str


class BankStatementOut(Struct, kw_only=True):
    account: str  # IBAN or other account id ("" for statements imported before accounts were kept)
    statement_id: str
    statement_date: date
    imported_at: datetime
    currency: str
    line_count: int
    credits: str
    debits: str
    lines: list[StatementLineOut]
    exceptions: list[StatementException]
    # as the bank sent them (payments.bank; None for statements imported before they were kept)
    sequence: int | None = None
    opening_balance: str | None = None  # signed: < 0 overdrawn
    closing_balance: str | None = None
    checks: list[BalanceCheck] = []  # opening = previous closing, opening + lines = closing, closing = ledger


def _statement_lines(summary: dict[str, Any], account: str, statement_id: str) -> list[StatementLineOut]:
    out = []
    for line in summary.get("lines", []):
        if line.get("statement_id") != statement_id or line.get("account", "") not in (account, ""):
            continue
        out.append(
            StatementLineOut(
                entry=int(line["entry"]),
                detail=line.get("detail"),
                booking_date=date.fromisoformat(line["booking_date"]),
                amount=str(line["amount"]),
                outcome=str(line["outcome"]),
                match=line.get("match"),
                entry_id=line.get("entry_id"),
                counterparty_name=line.get("counterparty_name"),
                counterparty_iban=line.get("counterparty_iban"),
                remittance=line.get("remittance"),
                reference=line.get("reference"),
                note=line.get("note"),
                exception_id=line.get("exception_id"),
            )
        )
    return out


def _statement_ref(summary: dict[str, Any], account: str, statement_id: str, on: date) -> StatementRef | None:
    """What the import recorded of the statement: its sequence number, balances and balance checks."""
    for ref in summary.get("statements", []):
        if (ref.get("account"), ref.get("statement_id"), ref.get("statement_date")) == (
            account, statement_id, on.isoformat()
        ):  # fmt: skip
            return msgspec.convert(ref, StatementRef)
    return None


async def _statements_out(ctx: Kontor, business: Business, rows: list[asyncpg.Record]) -> list[BankStatementOut]:
    refs = [f"{r['account']}/{r['statement_id']}/{r['statement_on'].isoformat()}" for r in rows]
    found = await ctx.reports_pool.fetch(
        "SELECT exception_id, source_ref, line_no, kind, amount_minor, state FROM reconciliation_exceptions "
        "WHERE merchant_id = $1 AND business = $2 AND source = 'bank' AND source_ref = ANY($3::text[]) "
        "ORDER BY exception_id",
        business.merchant_id,
        business.code,
        refs,
    )
    by_ref: dict[str, list[StatementException]] = defaultdict(list)
    cur = business.currency
    for e in found:
        by_ref[e["source_ref"]].append(
            StatementException(
                exception_id=e["exception_id"],
                line=e["line_no"],
                kind=e["kind"],
                amount=format_amount(e["amount_minor"], cur),
                state=e["state"],
            )
        )
    out = []
    for r, source_ref in zip(rows, refs, strict=True):
        lines = _statement_lines(r["summary"], r["account"], r["statement_id"])
        ref = _statement_ref(r["summary"], r["account"], r["statement_id"], r["statement_on"])
        amounts = [Decimal(line.amount) for line in lines]
        out.append(
            BankStatementOut(
                account=r["account"],
                statement_id=r["statement_id"],
                statement_date=r["statement_on"],
                imported_at=r["imported_at"],
                currency=cur,
                line_count=len(lines),
                credits=format_amount(int(sum(a for a in amounts if a > 0) * 10 ** currency_decimals(cur)), cur),
                debits=format_amount(int(-sum(a for a in amounts if a < 0) * 10 ** currency_decimals(cur)), cur),
                lines=lines,
                exceptions=by_ref[source_ref],
                sequence=ref.sequence if ref else None,
                opening_balance=ref.opening_balance if ref else None,
                closing_balance=ref.closing_balance if ref else None,
                checks=ref.checks if ref else [],
            )
        )
    return out


async def bank_statements(
    ctx: Kontor,
    business: Business,
    *,
    account: str | None,
    from_date: date | None,
    to_date: date | None,
    cursor: str | None,
    limit: int,
) -> Page[BankStatementOut]:
    """Imported bank statements, latest statement date first, each with its lines and what they matched."""
    last = decode_cursor(cursor, date, str, str) if cursor else [None, None, None]
    rows = await ctx.reports_pool.fetch(
        "SELECT account, statement_id, statement_on, imported_at, summary FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND ($3::text IS NULL OR account = $3) "
        "AND ($4::date IS NULL OR statement_on >= $4) AND ($5::date IS NULL OR statement_on <= $5) "
        "AND ($6::date IS NULL OR (statement_on, account, statement_id) < ($6, $7, $8)) "
        "ORDER BY statement_on DESC, account DESC, statement_id DESC LIMIT $9",
        business.merchant_id,
        business.code,
        account,
        from_date,
        to_date,
        *last,
        limit + 1,
    )
    more = len(rows) > limit
    items = await _statements_out(ctx, business, list(rows[:limit]))
    tail = items[-1] if items else None
    next_cursor = encode_cursor(tail.statement_date, tail.account, tail.statement_id) if more and tail else None
    return Page(items=items, next_cursor=next_cursor)


async def bank_statement(
    ctx: Kontor, business: Business, statement_on: date, statement_id: str, account: str | None
) -> list[BankStatementOut]:
    """The statements of that date and id (one per account, or the one of `account`)."""
    rows = await ctx.reports_pool.fetch(
        "SELECT account, statement_id, statement_on, imported_at, summary FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND statement_on = $3 AND statement_id = $4 "
        "AND ($5::text IS NULL OR account = $5) ORDER BY account LIMIT 20",
        business.merchant_id,
        business.code,
        statement_on,
        statement_id,
        account,
    )
    return await _statements_out(ctx, business, list(rows))
