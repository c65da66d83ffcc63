"""Dunning runs: for every customer who owes something, decide one step (`dunning.decide`) and book it.

A run works through the customers in chunks; each chunk is one transaction that locks the customers'
dunning state, re-reads their receivable lines, decides, and books (so a payment booked before the chunk is
seen, and a crash leaves whole chunks). Booking a decision: a notice is stored with its content, books its
fees and interest in one entry (Dr AR / Cr DUN_FEE_INC, INT_INC), registers its payment reference and
advances the customer's level; a write-off is booked by `dunning.writeoffs`; a hand-over opens a collection
case (status 90); each notifies the merchant (outbox) in the same transaction.

Issuing a notice is idempotent: one notice per customer, cycle, level and set of items (a unique key),
and a customer gets at most one notice per day. So running a day twice books nothing twice, and a
crashed run is simply run again. One run per business code at a time; the run's row, lock and lease are
`dunning.runlog`'s.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from dunning.decide import Decision, State, decide, notice_content, notice_items_key
from dunning.items import open_items
from dunning.notices import notice_urls
from dunning.policy import Policy, base_rates, load_policy
from dunning.runlog import ActionOut, RunOut, SkipOut, Trigger, claim, finish, get_run, run_lock
from dunning.store import (
    advance_states,
    ar_account,
    candidates,
    load_context,
    load_events,
    load_states,
    reset_dunning,
    set_collection_status,
)
from dunning.writeoffs import write_off
from ledger import journal
from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.domain import Business, EntryDraft, LineDraft, Side
from ledger.errors import present
from ledger.money import format_amount
from ledger.scheduler import analyze_stale_tables
from payments.notify import emit, emit_many
from payments.references import Requested, creditor_reference
from payments.references import register as register_references

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["run_dunning"]

log = logging.getLogger("kontor.dunning")

SKIPPED_LISTED = 1000
RUN_TABLES = ("dunning_accounts",)  # a run fills it from empty: analyzed between chunks when stale


async def run_dunning(
    ctx: Kontor,
    business: Business,
    *,
    as_of: date,
    trigger: Trigger,
    dry_run: bool = False,
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> RunOut:
    """Run (or with `dry_run`, only decide) one day's dunning for a business code; `chunk` customers a
    transaction, `progress(done, total)` after each. 409 `dunning_run_in_progress` while another run holds it."""
    policy, _ = await load_policy(ctx, business)
    rates = await base_rates(ctx)
    async with run_lock(ctx, business):
        return await _locked_run(ctx, business, policy, rates, as_of, trigger, dry_run, chunk, progress)


async def _locked_run(
    ctx: Kontor,
    business: Business,
    policy: Policy,
    rates: list[tuple[date, Decimal]],
    as_of: date,
    trigger: Trigger,
    dry_run: bool,
    chunk: int,
    progress: Callable[[int, int], None] | None,
) -> RunOut:
    run_id = None
    if not dry_run:
        run_id, fresh = await claim(ctx, business, as_of, trigger)
        if not fresh:
            return await get_run(ctx, business, run_id)
    counts: Counter[str] = Counter()
    skipped: list[SkipOut] = []
    planned: list[ActionOut] = []
    ar = await ar_account(ctx, business)
    try:
        async with ctx.pool.acquire() as conn:
            customers = await candidates(conn, business, ar, as_of)
        for start in range(0, len(customers), chunk):
            part = customers[start : start + chunk]
            async with ctx.pool.acquire() as conn, conn.transaction():
                decisions = await _decide_chunk(conn, business, ar, part, policy, rates, as_of)
                if not dry_run:
                    await _apply(ctx, conn, business, decisions, as_of, run_id)
            for d in decisions:
                counts[d.action] += 1
                if d.action == "skip" and len(skipped) < SKIPPED_LISTED:
                    skipped.append(SkipOut(customer=d.customer, reason=d.reason or ""))
                elif d.action not in ("skip", "none") and len(planned) < SKIPPED_LISTED:
                    planned.append(_action_out(d, business.currency))
            counts["customers"] += len(part)
            # a first run fills dunning_accounts from empty: plans made while it looked empty scan every row
            # of the business code for each chunk (seen on PostgreSQL 15: the run grew quadratic)
            await analyze_stale_tables(ctx, RUN_TABLES)
            if progress is not None:
                progress(min(start + chunk, len(customers)), len(customers))
    except Exception as exc:
        if run_id is not None:
            await finish(ctx, business, run_id, "failed", counts, skipped, f"{type(exc).__name__}: {exc}"[:1000])
        raise
    if run_id is None:
        return RunOut(
            run_id=None,
            as_of=as_of,
            trigger=trigger,
            dry_run=True,
            state="done",
            counts=dict(counts),
            skipped=skipped,
            actions=planned,
            started_at=None,
            finished_at=None,
        )
    await finish(ctx, business, run_id, "done", counts, skipped, None)
    log.info("dunning run done", extra={"business": business.code, "run_id": run_id, "counts": dict(counts)})
    return await get_run(ctx, business, run_id)


def _action_out(d: Decision, currency: str) -> ActionOut:
    amount = d.fee + d.flat_fee + d.interest_increment if d.action == "notice" else d.amount
    return ActionOut(
        customer=d.customer,
        action=d.action,
        level=d.level or None,
        amount=format_amount(amount, currency),
        reason=d.reason,
    )


async def _decide_chunk(
    conn: Connection,
    business: Business,
    ar: int,
    customers: list[str],
    policy: Policy,
    rates: list[tuple[date, Decimal]],
    on: date,
) -> list[Decision]:
    """The chunk's decisions, its customers' dunning state locked for the transaction."""
    states = await load_states(conn, business, customers, lock=True)
    events = await load_events(conn, business, ar, customers, on)
    run = await load_context(conn, business, customers, on)
    return [decide(c, open_items(events.get(c, [])), states.get(c, State()), policy, run, rates, on) for c in customers]


# --- booking ---------------------------------------------------------------------------------------------
async def _apply(
    ctx: Kontor, conn: Connection, business: Business, decisions: list[Decision], on: date, run_id: int | None
) -> None:
    notices = [d for d in decisions if d.action == "notice"]
    if notices:
        await _issue_notices(ctx, conn, business, notices, on, run_id)
    for d in decisions:
        if d.action == "write_off":
            items = present(d.items, "a write-off is decided with the customer's items")
            await write_off(
                ctx,
                conn,
                business,
                d.customer,
                costs=items.costs,
                interest=items.interest,
                principal=[b for b in d.overdue if b.open > 0],
                reason=d.reason or "write-off",
                on=on,
            )
            await reset_dunning(conn, business, d.customer)
        elif d.action == "collection":
            await _hand_over(conn, business, d, on)
        elif d.action == "reset":
            await reset_dunning(conn, business, d.customer)


async def _hand_over(conn: Connection, business: Business, d: Decision, on: date) -> None:
    case_id = await conn.fetchval(
        "INSERT INTO collection_cases (merchant_id, business, customer, status, amount_minor, opened_on, history) "
        "VALUES ($1, $2, $3, 90, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING case_id",
        business.merchant_id,
        business.code,
        d.customer,
        d.amount,
        on,
        [{"status": 90, "on": on.isoformat()}],
    )
    if case_id is None:
        return
    await set_collection_status(conn, business, [d.customer], 90, since=on)
    await emit(
        conn,
        business,
        "reminder.sent",
        {
            "customer": d.customer,
            "collection_status": 90,
            "case_id": case_id,
            "amount": format_amount(d.amount, business.currency),
            "currency": business.currency,
        },
    )


async def _issue_notices(
    ctx: Kontor, conn: Connection, business: Business, notices: list[Decision], on: date, run_id: int | None
) -> None:
    contents = {d.customer: notice_content(d, business.currency, on) for d in notices}
    keys = {d.customer: notice_items_key(d) for d in notices}
    inserted = await conn.fetch(
        "INSERT INTO dunning_notices (merchant_id, business, customer, level, issued_on, pay_by, items_key, content, "
        "run_id) SELECT $1, $2, u.customer, u.level, $3, u.pay_by, u.items_key, u.content, $4 "
        "FROM unnest($5::text[], $6::smallint[], $7::date[], $8::text[], $9::jsonb[]) "
        "AS u(customer, level, pay_by, items_key, content) ON CONFLICT DO NOTHING RETURNING customer, notice_id",
        business.merchant_id,
        business.code,
        on,
        run_id,
        [d.customer for d in notices],
        [d.level for d in notices],
        [d.pay_by for d in notices],
        [keys[d.customer] for d in notices],
        [contents[d.customer] for d in notices],
    )
    ids = {r["customer"]: r["notice_id"] for r in inserted}
    issued = [d for d in notices if d.customer in ids]
    await register_references(
        conn,
        business,
        [
            Requested(
                creditor_reference("dunning_notice", ids[d.customer]),
                d.customer,
                d.total,
                sorted({b.order_ref for b in d.overdue if b.order_ref}),
                f"dunning_notice:{ids[d.customer]}",
            )
            for d in issued
            if d.total > 0
        ],
    )
    entry_of = await _book_charges(ctx, conn, business, issued, on, ids)
    await advance_states(conn, business, issued, on)
    if entry_of:
        await conn.execute(
            "UPDATE dunning_notices n SET entry_id = u.entry_id FROM unnest($2::bigint[], $3::bigint[]) "
            "AS u(notice_id, entry_id) WHERE n.merchant_id = $1 AND n.notice_id = u.notice_id",
            business.merchant_id,
            [ids[c] for c in entry_of],
            list(entry_of.values()),
        )
    cur = business.currency
    events = []
    for d in issued:
        notice_id, content = ids[d.customer], contents[d.customer]
        url, letter_pdf, letter_html = notice_urls(business, notice_id)
        events.append(
            (
                "reminder.sent",
                {
                    "customer": d.customer,
                    "level": d.level,
                    "notice_id": notice_id,
                    "pay_by": content["pay_by"],
                    "total": content["total"],
                    "currency": cur,
                    "document_url": url,
                    "letter_pdf_url": letter_pdf,
                    "letter_html_url": letter_html,
                    "payment_reference": creditor_reference("dunning_notice", notice_id),
                },
            )
        )
        events.append(
            (
                "document.created",
                {"customer": d.customer, "document": "dunning_notice", "notice_id": notice_id, "level": d.level}
                | {"url": url, "letter_pdf_url": letter_pdf, "letter_html_url": letter_html},
            )
        )
    await emit_many(conn, business, events)


async def _book_charges(
    ctx: Kontor, conn: Connection, business: Business, issued: list[Decision], on: date, ids: dict[str, int]
) -> dict[str, int]:
    """Fees (with the B2B flat fee) and interest of each notice: one entry, Dr AR / Cr DUN_FEE_INC, INT_INC
    (the metadata carries the split for dunning's replay), whose reference is the notice's number (its document
    number), posted in batches of 1,000."""
    roles = await accounts_by_role(ctx, business)
    ar, fees, interest = roles("AR"), roles("DUN_FEE_INC"), roles("INT_INC")
    cur = business.currency
    drafts: list[EntryDraft] = []
    owners: list[str] = []
    for d in issued:
        charges = d.fee + d.flat_fee
        if not charges + d.interest_increment:
            continue
        lines = [LineDraft(ar, Side.DEBIT, charges + d.interest_increment, cur, d.customer)]
        if charges:
            lines.append(LineDraft(fees, Side.CREDIT, charges, cur))
        if d.interest_increment:
            lines.append(LineDraft(interest, Side.CREDIT, d.interest_increment, cur))
        drafts.append(
            EntryDraft(
                on,
                f"Dunning level {d.level} for customer {d.customer}: fees (no VAT) and default interest",
                tuple(lines),
                str(ids[d.customer]),  # the notice's number, as its letter prints it: DATEV's Belegfeld 1
                {
                    "dunning": "charges",
                    "fee": str(charges),
                    "interest": str(d.interest_increment),
                    "notice_id": str(ids[d.customer]),
                },
            )
        )
        owners.append(d.customer)
    entry_of: dict[str, int] = {}
    for start in range(0, len(drafts), 1000):
        posted = await journal.post_entries(
            ctx, business, drafts[start : start + 1000], idem_key=None, request_sha256=bytes(32), conn=conn
        )
        entry_of.update(zip(owners[start : start + 1000], (e.id for e in posted.entries), strict=True))
    return entry_of
