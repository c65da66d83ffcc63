"""A customer's open items as dunning sees them, pauses, and the collection agency's cases.

Collection statuses (reference product): 90 ready for hand-over, 91 transferred to the agency, then the
agency's feedback: 95 recalled, 96 denied, 97 closed by the merchant, 98 closed without payment (the
debt is written off), 99 paid (the payment is booked; the case closes).
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Annotated, Literal

import asyncpg
from msgspec import Meta, Struct

from dunning.decide import current_cycle
from dunning.store import ar_account, customer_items, load_states, paused_orders, reset_dunning, set_collection_status
from dunning.writeoffs import claim_by_rate, write_off
from ledger.books import accounts_by_role, book, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable, present
from ledger.money import format_amount, parse_amount_field
from ledger.schemas import DatedBody, EffectiveDate, LedgerDate
from ledger.textsafe import cells, csv_writer
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated

__all__ = [
    "CaseOut",
    "CollectionStatusIn",
    "OpenItemsOut",
    "PauseIn",
    "customer_open_items",
    "handovers",
    "handovers_csv",
    "pause_customer",
    "pause_item",
    "record_collection_status",
    "transfer_handovers",
]


class PrincipalOut(Struct, kw_only=True):
    order_reference: str | None
    due_date: date
    amount: str
    overdue: bool
    by_rate: dict[str, str]  # VAT rate -> gross part ("none": no known rate)
    paused: bool


class OpenItemsOut(Struct, kw_only=True):
    customer: str
    currency: str
    as_of: date
    principal: list[PrincipalOut]
    costs: str
    interest: str
    credit: str
    total: str
    overdue_total: str
    dunning_level: int
    last_notice_on: date | None
    default_on: date | None
    paused_until: date | None
    collection_status: int | None


async def customer_open_items(ctx: Kontor, business: Business, customer: str, as_of: date) -> OpenItemsOut:
    ar = await ar_account(ctx, business)
    async with ctx.pool.acquire() as conn:
        items = await customer_items(conn, business, ar, customer, as_of)
        stored = (await load_states(conn, business, [customer])).get(customer)
        paused = (await paused_orders(conn, business, [customer], as_of)).get(customer, set())
        state = current_cycle(stored, items) if stored else None
        cur = business.currency
        principal = []
        for bucket in sorted(items.principal.values(), key=lambda b: (b.due, b.key)):
            if bucket.open <= 0:
                continue
            split = await claim_by_rate(conn, business, bucket)
            principal.append(
                PrincipalOut(
                    order_reference=bucket.order_ref,
                    due_date=bucket.due,
                    amount=format_amount(bucket.open, cur),
                    overdue=bucket.due < as_of,
                    by_rate={rate: format_amount(v, cur) for rate, v in split.items()},
                    paused=bucket.order_ref in paused,
                )
            )
    overdue = items.overdue_total(as_of)
    return OpenItemsOut(
        customer=customer,
        currency=cur,
        as_of=as_of,
        principal=principal,
        costs=format_amount(items.costs, cur),
        interest=format_amount(items.interest, cur),
        credit=format_amount(items.credit, cur),
        total=format_amount(items.total, cur),
        overdue_total=format_amount(overdue, cur),
        dunning_level=state.level if state else 0,
        last_notice_on=state.last_notice_on if state else None,
        default_on=state.default_on if state else None,
        paused_until=state.paused_until if state and state.paused(as_of) else None,
        collection_status=state.collection_status if state else None,
    )


# --- pauses --------------------------------------------------------------------------------------------------
class PauseIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    until: LedgerDate | None = None  # none: until resumed


FOREVER = date(9999, 12, 31)


async def pause_customer(ctx: Kontor, business: Business, customer: str, body: PauseIn | None) -> None:
    """Pause (body) or resume (None) the dunning of a customer."""
    await ctx.pool.execute(
        "INSERT INTO dunning_accounts (merchant_id, business, customer, paused_until, pause_reason) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, business, customer) DO UPDATE "
        "SET paused_until = excluded.paused_until, pause_reason = excluded.pause_reason, updated_at = now()",
        business.merchant_id,
        business.code,
        customer,
        None if body is None else (body.until or FOREVER),
        None if body is None else body.reason,
    )


async def pause_item(ctx: Kontor, business: Business, order_ref: str, body: PauseIn | None) -> None:
    """Pause (body) or resume (None) the dunning of one order's items."""
    known = await ctx.pool.fetchval(
        "SELECT true FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        business.merchant_id,
        business.code,
        order_ref,
    )
    if not known:
        raise NotFound("order_not_found", f"order {order_ref} not found")
    if body is None:
        await ctx.pool.execute(
            "DELETE FROM dunning_item_pauses WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
            business.merchant_id,
            business.code,
            order_ref,
        )
        return
    await ctx.pool.execute(
        "INSERT INTO dunning_item_pauses (merchant_id, business, order_ref, until, reason) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (merchant_id, business, order_ref) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        business.merchant_id,
        business.code,
        order_ref,
        body.until or FOREVER,
        body.reason,
    )


# --- collection ----------------------------------------------------------------------------------------------
class CaseOut(Struct, kw_only=True):
    case_id: int
    customer: str
    status: int
    amount: str
    currency: str
    opened_on: date
    transferred_on: date | None
    closed_on: date | None
    history: list[dict[str, object]]


class CollectionStatusIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    customer: Annotated[str, Meta(min_length=1, max_length=64)]
    status: Literal[95, 96, 97, 98, 99]
    on: EffectiveDate
    amount: Annotated[str, Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$")] | None = None  # 99: what was paid
    note: Annotated[str, Meta(max_length=500)] | None = None


def _case(business: Business, r: asyncpg.Record) -> CaseOut:
    return CaseOut(
        case_id=r["case_id"],
        customer=r["customer"],
        status=r["status"],
        amount=format_amount(r["amount_minor"], business.currency),
        currency=business.currency,
        opened_on=r["opened_on"],
        transferred_on=r["transferred_on"],
        closed_on=r["closed_on"],
        history=list(r["history"]),
    )


async def handovers(ctx: Kontor, business: Business, status: int | None) -> list[CaseOut]:
    rows = await ctx.pool.fetch(
        "SELECT * FROM collection_cases WHERE merchant_id = $1 AND business = $2 AND ($3::smallint IS NULL OR status = $3) "
        "ORDER BY case_id",
        business.merchant_id,
        business.code,
        status,
    )
    return [_case(business, r) for r in rows]


def handovers_csv(cases: list[CaseOut]) -> str:
    """The hand-over file for the agency: CSV, CRLF, formula-like cells neutralised (ledger.textsafe)."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(["case_id", "customer", "status", "amount", "currency", "opened_on", "transferred_on"])
    for c in cases:
        writer.writerow(cells([c.case_id, c.customer, c.status, c.amount, c.currency, c.opened_on, c.transferred_on]))
    return out.getvalue()


async def transfer_handovers(ctx: Kontor, business: Business, on: date) -> list[CaseOut]:
    """Every case ready for hand-over (90) is transferred to the agency (91); returns them."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "UPDATE collection_cases SET status = 91, transferred_on = $3, "
            "history = history || jsonb_build_array(jsonb_build_object('status', 91, 'on', $3::date)) "
            "WHERE merchant_id = $1 AND business = $2 AND status = 90 RETURNING *",
            business.merchant_id,
            business.code,
            on,
        )
        await set_collection_status(conn, business, [r["customer"] for r in rows], 91)
        for r in rows:
            await emit(
                conn,
                business,
                "reminder.sent",
                {"customer": r["customer"], "collection_status": 91, "case_id": r["case_id"]},
            )
    return [_case(business, r) for r in sorted(rows, key=lambda r: r["case_id"])]


async def record_collection_status(ctx: Kontor, business: Business, body: CollectionStatusIn) -> CaseOut:
    """The agency's feedback on a transferred case: booked and notified."""
    amount = None
    if body.status == 99:
        if body.amount is None:
            raise Unprocessable("amount_required", "status 99 (paid) needs the amount paid", [FieldError("amount", "")])
        amount = parse_amount_field(body.amount, business.currency, "amount")
    async with ctx.pool.acquire() as conn, conn.transaction():
        case = await conn.fetchrow(
            "SELECT * FROM collection_cases WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
            "AND status IN (90, 91, 95, 96) ORDER BY case_id DESC LIMIT 1 FOR UPDATE",
            business.merchant_id,
            business.code,
            body.customer,
        )
        if case is None:
            raise Conflict("no_collection_case", f"customer {body.customer} has no open collection case")
        entry: dict[str, object] = {"status": body.status, "on": body.on.isoformat(), "note": body.note}
        closes = body.status in (97, 98, 99)  # 98 and 99 leave nothing to dun; 97: the merchant took it over
        if body.status == 99:
            amount = present(amount, "status 99 without an amount was refused above")
            roles = await accounts_by_role(ctx, business)
            entry["entry_id"] = await book(
                ctx,
                conn,
                business,
                transfer_lines(roles("BANK"), roles("AR"), amount, business.currency, customer=body.customer),
                on=body.on,
                description=f"Payment collected by the agency, case {case['case_id']}",
                reference=body.customer,
                metadata={"collection_case": str(case["case_id"])},
            )
            await run_receivable_hooks(ctx, conn, business, body.customer, on=body.on)
            await emit_balance_updated(conn, business, body.customer, "collection.paid")
        elif body.status == 98:
            ar = await ar_account(ctx, business)
            items = await customer_items(conn, business, ar, body.customer, body.on)
            done = await write_off(
                ctx,
                conn,
                business,
                body.customer,
                costs=items.costs,
                interest=items.interest,
                principal=[b for b in items.overdue(body.on + timedelta(days=1)) if b.open > 0],
                reason="collection closed without payment",
                on=body.on,
            )
            entry["write_off_id"] = done.write_off_id
        row = await conn.fetchrow(
            "UPDATE collection_cases SET status = $3, closed_on = CASE WHEN $4 THEN $5::date END, "
            "history = history || jsonb_build_array($6::jsonb) WHERE merchant_id = $1 AND case_id = $2 RETURNING *",
            business.merchant_id,
            case["case_id"],
            body.status,
            closes,
            body.on,
            entry,
        )
        if body.status in (98, 99):
            await reset_dunning(conn, business, body.customer)
        else:
            await set_collection_status(conn, business, [body.customer], body.status)
        await emit(
            conn,
            business,
            "reminder.sent",
            {"customer": body.customer, "collection_status": body.status, "case_id": case["case_id"]},
        )
    row = present(row, "the case was locked above and is updated in every branch")
    return _case(business, row)
