"""Reconciliation exceptions: what a settlement report or a bank statement says that the ledger cannot match, and
dispute outcomes recorded by hand that Amazon's resolution contradicts (payments.disputes).

Nothing is booked blindly, and nothing is left out either: the amount of an unmatched line is parked in
SUSPENSE against the account the money really moved on (PSP for settlement rows and disputes, BANK for
statement lines), so PSP keeps equalling what Amazon owes and BANK what the bank holds. The exception then waits
for an accountant, who either resolves it (SUSPENSE is booked out to the right account, a customer's if
it is the receivables account) or dismisses it with a reason (the parking is reversed: the line is not
a business event of these books, e.g. a duplicate row Amazon will correct, or a payment to another
business code's account).

Signs: an exception's amount is > 0 when money came in unexplained (Dr PSP or BANK / Cr SUSPENSE) and
< 0 when it went out (Dr SUSPENSE / Cr PSP or BANK).

Every unmatched bank statement line or settlement row is parked by an entry of its own (a bank line on its
booking day), so each is one booking in the journal and one row in DATEV, never netted with others. Some
exceptions park nothing (`note`): a statement whose balances do not agree names the difference, but the money
already sits where the lines put it; resolving or dismissing such an exception records the accountant's reason
and books nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple

import asyncpg
from msgspec import Meta, Struct

from ledger import journal
from ledger.audit import record_action
from ledger.books import Roles, accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Account, Business, EntryDraft, LineDraft, Side
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable, present
from ledger.money import format_amount, vat_from_gross
from ledger.schemas import ENTRIES_PER_BATCH_MAX, DatedBody, EffectiveDate
from ledger.tenancy import accounts_with
from payments.notify import emit_balance_updated

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "ExceptionDraft",
    "ExceptionOut",
    "ExceptionPage",
    "Resolution",
    "dismiss_exception",
    "list_exceptions",
    "note",
    "park",
    "resolve_exception",
]

COUNTER_ROLE = {"settlement": "PSP", "bank": "BANK", "dispute": "PSP"}


class ExceptionDraft(NamedTuple):
    line_no: int
    kind: str
    description: str
    amount: int  # signed, see the module docstring
    on: date | None = None  # the parking entry's date (else the date `park` is given)
    booking_text: str = ""  # the parking entry's description (else one naming the source)
    metadata: Mapping[str, str] | None = None  # added to the parking entry's metadata
    reference: str | None = None  # the parking entry's document number (else the source's reference)


class Resolution(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Book the parked amount out of SUSPENSE to `account` (a number of the chart), or dismiss it."""

    action: Literal["resolve", "dismiss"]
    account: Annotated[str, Meta(min_length=1, max_length=20)] | None = None
    customer: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    booking_date: EffectiveDate | None = None


class ExceptionOut(Struct, kw_only=True):
    exception_id: int
    source: str
    source_reference: str
    line: int
    kind: str
    description: str
    amount: str
    currency: str
    state: str
    suspense_entry_id: int | None
    resolution: dict[str, str | None] | None
    resolution_entry_id: int | None


class ExceptionPage(Struct, kw_only=True):
    items: list[ExceptionOut]
    next_after: int | None


async def park(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    *,
    source: Literal["settlement", "bank", "dispute"],
    source_ref: str,
    drafts: Sequence[ExceptionDraft],
    on: date,
) -> list[int]:
    """Park the drafts' amounts in SUSPENSE (against PSP or BANK) and record them as open exceptions; returns
    their ids.

    Each draft with an amount is an entry of its own (SUSPENSE against the counter account, two lines), dated
    on the draft's day (else `on`) and described by it: nothing is netted, so any number of drafts fits, and
    no DATEV row books SUSPENSE against itself. The entries are posted in batches.
    """
    if not drafts:
        return []
    roles = await accounts_by_role(ctx, business)
    suspense, counter = roles("SUSPENSE"), roles(COUNTER_ROLE[source])
    entry_of = await _park_each(ctx, conn, business, suspense, counter, source, source_ref, drafts, on)
    return await _insert(conn, business, source, source_ref, drafts, entry_of)


async def note(
    conn: Connection,
    business: Business,
    *,
    source: Literal["settlement", "bank", "dispute"],
    source_ref: str,
    drafts: Sequence[ExceptionDraft],
) -> list[int]:
    """Record the drafts as open exceptions that park nothing (their amount is a difference to look at, not
    money to classify)."""
    return await _insert(conn, business, source, source_ref, drafts, [None] * len(drafts))


async def _park_each(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    suspense: Account,
    counter: Account,
    source: str,
    source_ref: str,
    drafts: Sequence[ExceptionDraft],
    on: date,
) -> list[int | None]:
    """One entry per draft (SUSPENSE against the counter account), posted in batches of `ENTRIES_PER_BATCH_MAX`."""
    entries = [
        EntryDraft(
            effective_date=d.on or on,
            description=(d.booking_text or f"Unreconciled {source} line of {source_ref} parked in suspense")[:500],
            lines=(
                _suspense_line(suspense, d.amount, business.currency),
                LineDraft(counter, Side.DEBIT if d.amount > 0 else Side.CREDIT, abs(d.amount), business.currency),
            ),
            reference=(d.reference or source_ref)[:64],
            metadata={"reconciliation": source, **(d.metadata or {})},
        )
        for d in drafts
        if d.amount
    ]
    ids: list[int] = []
    for start in range(0, len(entries), ENTRIES_PER_BATCH_MAX):
        chunk = entries[start : start + ENTRIES_PER_BATCH_MAX]
        posted = await journal.post_entries(ctx, business, chunk, idem_key=None, request_sha256=bytes(32), conn=conn)
        ids += [e.id for e in posted.entries]
    booked = iter(ids)
    return [next(booked) if d.amount else None for d in drafts]


async def _insert(
    conn: Connection,
    business: Business,
    source: str,
    source_ref: str,
    drafts: Sequence[ExceptionDraft],
    entry_of: Sequence[int | None],
) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO reconciliation_exceptions (merchant_id, business, source, source_ref, line_no, kind, "
        "description, amount_minor, suspense_entry_id) "
        "SELECT $1, $2, $3, $4, * FROM unnest($5::int[], $6::text[], $7::text[], $8::bigint[], $9::bigint[]) "
        "RETURNING exception_id",
        business.merchant_id,
        business.code,
        source,
        source_ref,
        [d.line_no for d in drafts],
        [d.kind for d in drafts],
        [d.description[:1000] for d in drafts],
        [d.amount for d in drafts],
        entry_of,
    )
    return [r["exception_id"] for r in rows]


def _suspense_line(suspense: Account, amount: int, currency: str) -> LineDraft:
    return LineDraft(suspense, Side.CREDIT if amount > 0 else Side.DEBIT, abs(amount), currency)


def _out(business: Business, row: asyncpg.Record) -> ExceptionOut:
    return ExceptionOut(
        exception_id=row["exception_id"],
        source=row["source"],
        source_reference=row["source_ref"],
        line=row["line_no"],
        kind=row["kind"],
        description=row["description"],
        amount=format_amount(row["amount_minor"], business.currency),
        currency=business.currency,
        state=row["state"],
        suspense_entry_id=row["suspense_entry_id"],
        resolution=row["resolution"],
        resolution_entry_id=row["resolution_entry_id"],
    )


async def list_exceptions(
    ctx: Kontor, business: Business, *, state: str | None, source: str | None, after: int, limit: int
) -> ExceptionPage:
    rows = await ctx.pool.fetch(
        "SELECT * FROM reconciliation_exceptions WHERE merchant_id = $1 AND business = $2 "
        "AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR source = $4) AND exception_id > $5 "
        "ORDER BY exception_id LIMIT $6",
        business.merchant_id,
        business.code,
        state,
        source,
        after,
        limit + 1,
    )
    items = [_out(business, r) for r in rows[:limit]]
    return ExceptionPage(items=items, next_after=items[-1].exception_id if len(rows) > limit else None)


async def _open_exception(conn: Connection, business: Business, exception_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM reconciliation_exceptions WHERE merchant_id = $1 AND business = $2 AND exception_id = $3 "
        "FOR UPDATE",
        business.merchant_id,
        business.code,
        exception_id,
    )
    if row is None:
        raise NotFound("exception_not_found", f"reconciliation exception {exception_id} not found")
    if row["state"] != "open":
        raise Conflict("exception_closed", f"reconciliation exception {exception_id} was already {row['state']}")
    return row


async def resolve_exception(ctx: Kontor, business: Business, exception_id: int, body: Resolution) -> ExceptionOut:
    if body.action == "dismiss":
        return await dismiss_exception(ctx, business, exception_id, body)
    if body.account is None:
        raise Unprocessable(
            "account_required", "resolving books the amount to an account", [FieldError("account", "required")]
        )
    target = (await accounts_with(ctx, business, numbers=[body.account])).by_number.get(body.account)
    if target is None:
        raise Unprocessable("unknown_account", f"no account {body.account}", [FieldError("account", "unknown")])
    if target.customer_ledger != (body.customer is not None):
        raise Unprocessable(
            "customer_mismatch",
            "a customer is needed exactly when the account is the customer ledger",
            [FieldError("customer", "required for the customer ledger, not allowed otherwise")],
        )
    suspense = (await accounts_by_role(ctx, business))("SUSPENSE")
    if target.account_id == suspense.account_id:
        raise Unprocessable(
            "suspense_target",
            f"resolve to an account other than SUSPENSE ({suspense.number}): the account the amount belongs to",
            [FieldError("account", f"{suspense.number} is SUSPENSE, where the amount waits")],
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _open_exception(conn, business, exception_id)
        await _move(ctx, conn, business, row, target, body, "resolved")
    return await _one(ctx, business, exception_id)


async def dismiss_exception(ctx: Kontor, business: Business, exception_id: int, body: Resolution) -> ExceptionOut:
    """Reverse the parking: the line is not a business event of these books."""
    roles = await accounts_by_role(ctx, business)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _open_exception(conn, business, exception_id)
        counter = roles(COUNTER_ROLE[row["source"]])
        await _move(ctx, conn, business, row, counter, body, "dismissed")
    return await _one(ctx, business, exception_id)


async def _move(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    row: asyncpg.Record,
    target: Account,
    body: Resolution,
    state: str,
) -> None:
    amount = row["amount_minor"]
    entry_id = None
    if amount and row["suspense_entry_id"] is not None:  # nothing was parked for a noted difference
        roles = await accounts_by_role(ctx, business)
        suspense = roles("SUSPENSE")
        out_side = Side.DEBIT if amount > 0 else Side.CREDIT  # take back out of SUSPENSE what was parked
        lines = (
            LineDraft(suspense, out_side, abs(amount), business.currency),
            *(
                _taxed_lines(roles, target, out_side.opposite(), abs(amount), business.currency)
                if state == "resolved" and _taxed(target)
                else [LineDraft(target, out_side.opposite(), abs(amount), business.currency, body.customer)]
            ),
        )
        entry_id = await book(
            ctx,
            conn,
            business,
            lines,
            on=body.booking_date or ctx.today(),
            description=f"Reconciliation exception {row['exception_id']} {state}: {body.reason}",
            reference=row["source_ref"][:64],
            metadata={"reconciliation_exception": str(row["exception_id"])},
        )
    if entry_id is not None and body.customer is not None:  # booked to a customer's account
        await run_receivable_hooks(ctx, conn, business, body.customer, on=body.booking_date or ctx.today())
        await emit_balance_updated(conn, business, body.customer, "reconciliation")
    await conn.execute(
        "UPDATE reconciliation_exceptions SET state = $3, resolution = $4, resolution_entry_id = $5 "
        "WHERE merchant_id = $1 AND exception_id = $2",
        business.merchant_id,
        row["exception_id"],
        state,
        {"reason": body.reason, "account": target.number, "customer": body.customer},
        entry_id,
    )
    await record_action(
        conn,
        business.merchant_id,
        business.code,
        f"exception.{state}",
        str(row["exception_id"]),
        reason=body.reason,
        details={"account": target.number, "customer": body.customer, "entry": entry_id},
    )


def _taxed(account: Account) -> bool:
    """An account that carries VAT of a positive rate (revenue, sales deductions, bad debts), not a VAT account."""
    return bool(account.vat_rate) and not (account.role or "").startswith("VAT_")


def _taxed_lines(roles: Roles, target: Account, side: Side, gross: int, currency: str) -> list[LineDraft]:
    """The gross split as an invoice splits it: the VAT in it (gross x r / (100 + r), half-up:
    `ledger.money.vat_from_gross`) on the output VAT account of the target's rate, the net on the target, both on
    the same side. 422 `account_role_missing` when the chart has no VAT account of that rate."""
    rate = present(target.vat_rate, "only a taxed account is split")
    vat = vat_from_gross(gross, rate)
    lines = [LineDraft(target, side, gross - vat, currency)]
    if vat:
        lines.append(LineDraft(roles.per_rate("VAT", rate), side, vat, currency))
    return lines


async def _one(ctx: Kontor, business: Business, exception_id: int) -> ExceptionOut:
    row = await ctx.pool.fetchrow(
        "SELECT * FROM reconciliation_exceptions WHERE merchant_id = $1 AND exception_id = $2",
        business.merchant_id,
        exception_id,
    )
    row = present(row, "the exception was locked and updated above")
    return _out(business, row)
