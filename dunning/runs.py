"""Dunning runs: for every customer who owes something, decide one step and book it.

A run works through the customers in chunks; each chunk is one transaction that re-reads the
customers' receivable lines, decides, and books (so a payment booked before the chunk is seen, and a
crash leaves whole chunks). Per customer, in this order:
- nothing open: a dunning cycle that was running is reset;
- with the collection agency, in an open dispute, or paused: skipped, and the run says why;
- open amount up to the underpayment threshold: written off at once;
- dunning off, or overdue principal below the threshold: written off once the oldest overdue item is
  `write_off_days` overdue;
- else at most one level up when it is due (level 1 `days` after the oldest due date, later levels
  `days` after the previous notice): the notice books its fee, the B2B flat fee once in default, and the
  interest accrued since the default date less what was booked; after the final level, once
  `after_final_days` passed, the debt goes to collection (status 90) or is written off.
Issuing a notice is idempotent: one notice per customer, cycle, level and set of items (a unique key),
and a customer gets at most one notice per day. So running a day twice books nothing twice, and a
crashed run is simply run again.

One run per business code at a time, across all service instances: the runner holds a PostgreSQL
advisory lock for the run (released by the database if the runner dies). Scheduled runs claim the
day's slot (a unique row); a slot left `running` by a dead runner is resumed by the next instance.

The lock is also the run's lease: a row still `running` while nobody holds its business code's lock was left
by a runner that is gone (killed, crashed). It is shown as `failed` with an "aborted: ..." error from then on
(marked when runs are read, and by the next run, which holds the lock); the books are unaffected, because
every chunk is its own transaction and a run of the same day again books only what is still due.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from msgspec import Struct

from dunning.items import Bucket, OpenItems, default_interest, open_items, rate_on
from dunning.policy import Policy, base_rates, load_policy
from dunning.store import RunContext, State, candidates, current_cycle, load_context, load_events, load_states
from dunning.writeoffs import write_off
from ledger import journal
from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.domain import Business, EntryDraft, LineDraft, Side
from ledger.errors import Conflict, NotFound, present
from ledger.money import AMOUNT_MINOR_MAX, format_amount
from payments.notify import emit, emit_many
from payments.references import Requested, creditor_reference
from payments.references import register as register_references

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["LOCK_CLASS", "RunOut", "get_run", "list_runs", "lock_key", "reset_dunning", "run_dunning"]

log = logging.getLogger("kontor.dunning")

LOCK_CLASS = 0x44554E  # 'DUN'
SKIPPED_LISTED = 1000
Trigger = Literal["schedule", "api", "cli"]


class SkipOut(Struct, kw_only=True):
    customer: str
    reason: str


class ActionOut(Struct, kw_only=True):
    customer: str
    action: str  # notice, write_off, collection, reset
    level: int | None = None
    amount: str | None = None
    reason: str | None = None


class RunOut(Struct, kw_only=True):
    run_id: int | None  # None for a dry run
    as_of: date
    trigger: str
    dry_run: bool
    state: str
    counts: dict[str, int]
    skipped: list[SkipOut]
    actions: list[ActionOut]  # dry runs: what a run would do (first 1,000)
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None


@dataclass
class Decision:
    customer: str
    action: str  # notice, write_off, collection, reset, skip, none
    reason: str | None = None
    level: int = 0
    fee: int = 0
    flat_fee: int = 0
    interest_total: int = 0  # interest to date (the increment is this less what was booked)
    interest_increment: int = 0
    pay_by: date | None = None
    default_on: date | None = None
    cycle_started_on: date | None = None
    overdue: list[Bucket] = field(default_factory=list)
    items: OpenItems | None = None
    amount: int = 0
    final: bool = False  # the policy's last level: the letter announces what follows (`after_final`)
    after_final: str = ""
    interest_points: Decimal | None = None  # points over the base rate (§288 BGB), when interest runs
    base_rate: Decimal | None = None  # the base rate valid on the notice's day

    @property
    def total(self) -> int:
        """What a notice asks for: the overdue principal, every open fee and the interest to date."""
        items = present(self.items, "a notice is decided with the customer's items")
        principal = sum(b.open for b in self.overdue)
        return principal + items.costs + self.fee + self.flat_fee + items.interest + self.interest_increment


def decide(
    customer: str,
    items: OpenItems,
    state: State,
    policy: Policy,
    run: RunContext,
    rates: list[tuple[date, Decimal]],
    on: date,
) -> Decision:
    """One customer's step on day `on` (pure). A cycle whose notices were all paid is over (`current_cycle`)."""
    d = Decision(customer, "none", items=items)
    overdue = items.overdue(on, run.paused_orders.get(customer, ()))
    d.overdue = overdue
    d.amount = sum(b.open for b in overdue) + items.costs + items.interest
    stored, state = state, current_cycle(state, items)
    if sum(b.open for b in items.overdue(on)) + items.costs + items.interest <= 0:
        d.action = "reset" if stored.level or stored.default_on else "none"
    elif (why := _blocked(customer, state, run, on, d.amount)) is not None:
        d.action, d.reason = "skip", why
    elif d.amount <= policy.underpayment_minor:
        d.action, d.reason = "write_off", "underpayment"
    elif not policy.enabled or sum(b.open for b in overdue) < policy.threshold_minor:
        oldest_due = overdue[0].due if overdue else on
        if oldest_due + timedelta(days=policy.write_off_days) <= on:
            d.action, d.reason = "write_off", "dunning off" if not policy.enabled else "below the dunning threshold"
    elif state.level >= len(policy.levels):
        last_notice_on = present(state.last_notice_on, "a customer past the last level had a notice")
        if last_notice_on + timedelta(days=policy.after_final_days) <= on:
            if policy.after_final == "write_off":
                d.action, d.reason = "write_off", "dunning without success"
            else:
                d.action = "collection"
    else:
        _next_notice(d, state, policy, run, rates, on)
    return d


def _blocked(customer: str, state: State, run: RunContext, on: date, owed: int) -> str | None:
    if state.collection_status in (90, 91, 95, 96, 97):
        return f"in collection (status {state.collection_status})"
    if customer in run.disputed:
        return "open dispute"
    if state.paused(on):
        return f"paused: {state.pause_reason}"
    if owed <= 0:
        return "items paused"
    if owed > AMOUNT_MINOR_MAX:  # a write-off or its fees could not be booked as one line: leave it to a person
        return "owes more than one booking line can hold (10^15 minor units): handle by hand"
    return None


def _next_notice(
    d: Decision, state: State, policy: Policy, run: RunContext, rates: list[tuple[date, Decimal]], on: date
) -> None:
    """The next level's notice, if it is due today."""
    levels = policy.levels
    level = state.level + 1
    due_on = (
        (d.overdue[0].due if d.overdue else on) + timedelta(days=levels[0].days)
        if state.level == 0
        else (state.last_notice_on or on) + timedelta(days=levels[level - 1].days)
    )
    if due_on > on or state.last_notice_on == on:
        return
    spec = levels[level - 1]
    d.action, d.level, d.pay_by = "notice", level, on + timedelta(days=spec.payment_term_days)
    d.final, d.after_final = level == len(levels), policy.after_final
    d.cycle_started_on = on if state.level == 0 else state.cycle_started_on
    d.default_on = d.pay_by + timedelta(days=1) if state.level == 0 else state.default_on
    d.fee = spec.fee_minor if level > 1 else 0
    in_default = d.default_on is not None and on >= d.default_on
    is_business = d.customer in run.business_customers
    if in_default and is_business and not state.flat_fee_booked:
        d.flat_fee = policy.flat_fee_minor
    if in_default and policy.interest and d.default_on is not None:
        points = policy.business_points if is_business else policy.consumer_points
        d.interest_total = default_interest(
            d.overdue, default_on=d.default_on, through=on, points=points, base_rates=rates
        )
        d.interest_points, d.base_rate = points, rate_on(rates, on)
        d.interest_increment = max(0, d.interest_total - state.interest_minor)


# --- running -------------------------------------------------------------------------------------------
def lock_key(business: Business) -> int:
    return (business.merchant_id * 10_000 + business.code) % 2_147_483_647


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
    """Run (or with `dry_run`, only decide) one day's dunning for a business code."""
    policy, _ = await load_policy(ctx, business)
    rates = await base_rates(ctx)
    async with ctx.pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, lock_key(business)):
            raise Conflict("dunning_run_in_progress", f"a dunning run of business code {business.code} is running")
        try:
            await _abort_abandoned(ctx, business, lock_held_here=True)
            return await _locked_run(ctx, business, policy, rates, as_of, trigger, dry_run, chunk, progress)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, lock_key(business))


ABANDONED = (
    "aborted: the runner stopped before the run finished (its process ended); a run of the same day completes the work"
)


async def _abort_abandoned(ctx: Kontor, business: Business, *, lock_held_here: bool = False) -> None:
    """Mark `running` rows whose runner is gone as failed (see the module docstring).

    With `lock_held_here` the caller holds the business code's run lock, so every `running` row is a dead
    runner's; otherwise a row counts as abandoned while no session holds the lock. A runner that finishes
    meanwhile has committed `done` before it releases the lock, and the update re-checks the row's state."""
    await ctx.pool.execute(
        "UPDATE dunning_runs SET state = 'failed', error = $5, finished_at = now() "
        "WHERE merchant_id = $1 AND business = $2 AND state = 'running' AND ($6 OR NOT EXISTS (SELECT 1 FROM pg_locks "
        "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = $3::oid AND objid = $4::oid AND objsubid = 2 AND granted))",
        business.merchant_id,
        business.code,
        LOCK_CLASS,
        lock_key(business),
        ABANDONED,
        lock_held_here,
    )


async def _claim(ctx: Kontor, business: Business, as_of: date, trigger: Trigger) -> tuple[int, bool]:
    """The run's row: a new one, or for a scheduled run the day's slot (done already: nothing to do)."""
    if trigger == "schedule":
        row = await ctx.pool.fetchrow(
            "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, $2, $3, 'schedule', "
            "'running') ON CONFLICT (merchant_id, business, as_of) WHERE trigger = 'schedule' DO UPDATE "
            "SET state = 'running', error = NULL WHERE dunning_runs.state <> 'done' RETURNING run_id",
            business.merchant_id,
            business.code,
            as_of,
        )
        if row is None:
            done = await ctx.pool.fetchval(
                "SELECT run_id FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND as_of = $3 "
                "AND trigger = 'schedule'",
                business.merchant_id,
                business.code,
                as_of,
            )
            return int(done), False
        return int(row["run_id"]), True
    run_id = await ctx.pool.fetchval(
        "INSERT INTO dunning_runs (merchant_id, business, as_of, trigger, state) VALUES ($1, $2, $3, $4, 'running') "
        "RETURNING run_id",
        business.merchant_id,
        business.code,
        as_of,
        trigger,
    )
    return int(run_id), True


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
        run_id, fresh = await _claim(ctx, business, as_of, trigger)
        if not fresh:
            return await get_run(ctx, business, run_id)
    counts: Counter[str] = Counter()
    skipped: list[SkipOut] = []
    planned: list[ActionOut] = []
    ar = (await accounts_by_role(ctx, business))("AR").account_id
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
            if progress is not None:
                progress(min(start + chunk, len(customers)), len(customers))
    except Exception as exc:
        if run_id is not None:
            await _finish(ctx, business, run_id, "failed", counts, skipped, f"{type(exc).__name__}: {exc}"[:1000])
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
    await _finish(ctx, business, run_id, "done", counts, skipped, None)
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


async def _finish(
    ctx: Kontor,
    business: Business,
    run_id: int,
    state: str,
    counts: Counter[str],
    skipped: list[SkipOut],
    error: str | None,
) -> None:
    await ctx.pool.execute(
        "UPDATE dunning_runs SET state = $3, counts = $4, skipped = $5, error = $6, finished_at = now() "
        "WHERE merchant_id = $1 AND run_id = $2",
        business.merchant_id,
        run_id,
        state,
        dict(counts),
        [{"customer": s.customer, "reason": s.reason} for s in skipped],
        error,
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
    await conn.execute(
        "SELECT 1 FROM dunning_accounts WHERE merchant_id = $1 AND business = $2 AND customer = ANY($3::text[]) "
        "FOR UPDATE",
        business.merchant_id,
        business.code,
        customers,
    )
    events = await load_events(conn, business, ar, customers, on)
    states = await load_states(conn, business, customers)
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


async def reset_dunning(conn: Connection, business: Business, customer: str) -> None:
    """Start the customer's dunning over: level 0, no notice, interest, flat fee or collection status."""
    await conn.execute(
        "UPDATE dunning_accounts SET level = 0, last_notice_on = NULL, cycle_started_on = NULL, default_on = NULL, "
        "interest_minor = 0, flat_fee_booked = false, collection_status = NULL, collection_since = NULL, "
        "updated_at = now() WHERE merchant_id = $1 AND business = $2 AND customer = $3",
        business.merchant_id,
        business.code,
        customer,
    )


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
    await conn.execute(
        "UPDATE dunning_accounts SET collection_status = 90, collection_since = $4, updated_at = now() "
        "WHERE merchant_id = $1 AND business = $2 AND customer = $3",
        business.merchant_id,
        business.code,
        d.customer,
        on,
    )
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


def _content(d: Decision, business: Business, on: date) -> dict[str, Any]:
    items = present(d.items, "a notice is decided with the customer's items")
    pay_by = present(d.pay_by, "a notice is decided with its pay-by date")
    cur = business.currency
    costs = items.costs + d.fee + d.flat_fee
    interest = items.interest + d.interest_increment
    principal = sum(b.open for b in d.overdue)
    return {
        "customer": d.customer,
        "level": d.level,
        "issued_on": on.isoformat(),
        "pay_by": pay_by.isoformat(),
        "currency": cur,
        "items": [
            {"order_reference": b.order_ref, "due_date": b.due.isoformat(), "amount": format_amount(b.open, cur)}
            for b in d.overdue
        ],
        "principal": format_amount(principal, cur),
        "fee": format_amount(d.fee, cur),
        "flat_fee": format_amount(d.flat_fee, cur),
        "costs": format_amount(costs, cur),
        "interest": format_amount(interest, cur),
        "total": format_amount(principal + costs + interest, cur),
        "default_on": d.default_on.isoformat() if d.default_on else None,
        # what the letter says about itself and its interest (dunning.letters)
        "final": d.final,
        "after_final": d.after_final,
        "interest_points": None if d.interest_points is None else format(d.interest_points.normalize(), "f"),
        "base_rate": None if d.base_rate is None else format(d.base_rate.normalize(), "f"),
    }


async def _issue_notices(
    ctx: Kontor, conn: Connection, business: Business, notices: list[Decision], on: date, run_id: int | None
) -> None:
    contents = {d.customer: _content(d, business, on) for d in notices}
    keys = {d.customer: f"{d.cycle_started_on}:{','.join(b.key for b in d.overdue)}" for d in notices}
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
    await conn.executemany(
        "INSERT INTO dunning_accounts (merchant_id, business, customer, level, last_notice_on, cycle_started_on, "
        "default_on, interest_minor, flat_fee_booked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (merchant_id, business, customer) DO UPDATE SET level = excluded.level, "
        "last_notice_on = excluded.last_notice_on, cycle_started_on = excluded.cycle_started_on, "
        # a level-1 notice starts a new cycle: nothing booked in an earlier cycle carries over
        "default_on = excluded.default_on, interest_minor = excluded.interest_minor + CASE WHEN excluded.level = 1 "
        "THEN 0 ELSE dunning_accounts.interest_minor END, flat_fee_booked = excluded.flat_fee_booked OR "
        "(excluded.level > 1 AND dunning_accounts.flat_fee_booked), updated_at = now()",
        [
            (
                business.merchant_id,
                business.code,
                d.customer,
                d.level,
                on,
                d.cycle_started_on,
                d.default_on,
                d.interest_increment,
                d.flat_fee > 0,
            )
            for d in issued
        ],
    )
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
        url = f"/v1/businesses/{business.code}/dunning/notices/{notice_id}/document"
        letter = f"/v1/businesses/{business.code}/dunning/notices/{notice_id}/letter"
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
                    "letter_pdf_url": f"{letter}.pdf",
                    "letter_html_url": f"{letter}.html",
                    "payment_reference": creditor_reference("dunning_notice", notice_id),
                },
            )
        )
        events.append(
            (
                "document.created",
                {"customer": d.customer, "document": "dunning_notice", "notice_id": notice_id, "level": d.level}
                | {"url": url, "letter_pdf_url": f"{letter}.pdf", "letter_html_url": f"{letter}.html"},
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


# --- reading -----------------------------------------------------------------------------------------------
def _run_out(row: Any) -> RunOut:
    return RunOut(
        run_id=row["run_id"],
        as_of=row["as_of"],
        trigger=row["trigger"],
        dry_run=False,
        state=row["state"],
        counts=dict(row["counts"]),
        skipped=[SkipOut(customer=s["customer"], reason=s["reason"]) for s in row["skipped"]],
        actions=[],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
    )


async def get_run(ctx: Kontor, business: Business, run_id: int) -> RunOut:
    await _abort_abandoned(ctx, business)
    row = await ctx.pool.fetchrow(
        "SELECT * FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND run_id = $3",
        business.merchant_id,
        business.code,
        run_id,
    )
    if row is None:
        raise NotFound("dunning_run_not_found", f"dunning run {run_id} not found")
    return _run_out(row)


async def list_runs(ctx: Kontor, business: Business, *, before: int | None, limit: int) -> list[RunOut]:
    await _abort_abandoned(ctx, business)
    rows = await ctx.pool.fetch(
        "SELECT * FROM dunning_runs WHERE merchant_id = $1 AND business = $2 AND ($3::bigint IS NULL OR run_id < $3) "
        "ORDER BY run_id DESC LIMIT $4",
        business.merchant_id,
        business.code,
        before,
        limit,
    )
    return [_run_out(r) for r in rows]
