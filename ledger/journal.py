"""The journal: post entries (one or a batch, one by one or coalesced), replay a key's answer, reverse an entry.
Reading entries is `ledger.entries`, periods are `ledger.periods`.

Why one module (over 400 lines): posting one by one, posting coalesced and reversing share the row building,
the posting function's error translation and the replay of a key; apart, each would reach into the others.

Posting is one round trip: `kontor_post_entries` (schema.sql) checks the idempotency key, inserts the
entries and lines, adds to the balance slots and records the key, all in one implicit transaction;
the deferred constraint trigger checks the balance at commit. A retry with the same key returns the
stored entries; a concurrent duplicate loses the race on the key's primary key and is answered as a
replay. Connection failures are retried only when the request carries an idempotency key, because
then a commit whose outcome was lost is found again instead of being booked twice.

Single-entry postings with an idempotency key and no account that may not go negative (the HTTP
`POST .../entries` path) are coalesced: the process's `Coalescer` gathers those arriving together and
`kontor_post_coalesced` books them in one call and one commit (inserted together; when that fails, each
in a subtransaction of its own). A request answered from a batch was committed with it. A request the batch refused (closed period, unknown
account, a key held by another transaction, ...) is posted again alone through `kontor_post_entries`,
which gives it exactly the answer it gets without coalescing; a batch refused whole (the account bound,
a lost connection) is posted again one request at a time, and keyed retries replay what was committed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from ledger import metrics
from ledger.audit import PostedBy, actor_key_id, current_actor, record_action
from ledger.coalesce import Coalescer, QueueFull
from ledger.context import Kontor
from ledger.db import CONNECTION_LOST, RETRYABLE, TEXT_REFUSED
from ledger.domain import (
    Account,
    Business,
    EntryDraft,
    Side,
    content_sha256,
    reversal_of,
)
from ledger.entries import entry_draft, fetch_entries, render_entry, with_reversed_by
from ledger.errors import (
    Conflict,
    FieldError,
    InvariantViolation,
    NotFound,
    Unavailable,
    Unprocessable,
)
from ledger.money import ACCOUNT_TOTAL_MINOR_MAX
from ledger.schemas import EntryOut, ReversalIn

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["Posted", "post_entries", "replay_if_known", "reverse_entry"]

_POST_SQL = (
    "SELECT entry_id, recorded_at, replayed, request_sha256 FROM kontor_post_entries($1, $2, $3, $4, $5, $6, $7, $8)"
)
_COALESCED_SQL = (
    "SELECT request, entry_id, recorded_at, replayed, request_sha256, sqlstate FROM kontor_post_coalesced($1, $2)"
)


@dataclass(frozen=True, slots=True)
class Posted:
    entries: list[EntryOut]
    replayed: bool


def _acting_key() -> PostedBy | None:
    actor = current_actor()
    if actor is None or actor.key_id is None:
        return None
    return PostedBy(key_id=actor.key_id, name=actor.name, role=actor.role)


@dataclass(frozen=True, slots=True)
class _Rows:
    """A posting as the posting functions take it: entries and lines as JSON-ready dicts (see schema.sql)."""

    entries: list[dict[str, object]]
    lines: list[dict[str, object]]
    guarded: list[dict[str, object]]


def _rows(business: Business, drafts: Sequence[EntryDraft]) -> _Rows:
    entries: list[dict[str, object]] = []
    lines: list[dict[str, object]] = []
    guarded: dict[int, Account] = {}
    key_id = actor_key_id()
    for e, draft in enumerate(drafts, start=1):
        day = draft.effective_date
        entries.append(
            {
                "i": e,
                "d": day,
                "t": draft.description,
                "r": draft.reference,
                "m": draft.metadata or None,
                "v": draft.reverses,
                "o": draft.order_reference,
                "h": content_sha256(business.merchant_id, business.code, draft).hex(),
                "k": key_id,
            }
        )
        for n, line in enumerate(draft.lines, start=1):
            account = line.account
            lines.append(
                {
                    "e": e,
                    "n": n,
                    "d": day,
                    "a": account.account_id,
                    "c": line.customer,
                    "s": "D" if line.side is Side.DEBIT else "C",
                    "x": line.amount_minor,
                    "k": line.currency,
                }
            )
            if not account.allow_negative:
                guarded[account.account_id] = account
    return _Rows(entries, lines, [{"a": a.account_id, "cn": a.credit_normal} for a in guarded.values()])


def _arguments(
    business: Business, rows: _Rows, slot: int, idem_key: str | None, request_sha256: bytes
) -> tuple[object, ...]:
    """kontor_post_entries' parameters: entries and lines as two JSON arrays (see schema.sql)."""
    return (
        business.merchant_id,
        business.code,
        slot,
        idem_key,
        request_sha256,
        _json(rows.entries),
        _json(rows.lines),
        _json(rows.guarded),
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _translate(exc: asyncpg.PostgresError, business: Business, drafts: Sequence[EntryDraft]) -> Exception:
    """Map a database refusal to the client error it stands for (pair assertions of the domain)."""
    state = exc.sqlstate
    if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == "idempotency_keys_pkey":
        return exc  # a concurrent duplicate committed first: the caller replays it
    if isinstance(exc, (*RETRYABLE, *CONNECTION_LOST, *TEXT_REFUSED)):
        return exc  # retried whole (ledger.db.transaction_retrying), or answered 503/422 (ledger.http.problems)
    if state == "KN001":
        closed = getattr(exc, "detail", None) or "?"
        return Conflict(
            "period_closed",
            f"{exc.args[0] if exc.args else 'the period is closed'}: business {business.code} is "
            f"closed through {closed}; date the entry in an open period",
        )
    if state == "KN004" or isinstance(exc, asyncpg.NumericValueOutOfRangeError):
        detail = getattr(exc, "detail", None) or ""
        number = next((ln.account.number for d in drafts for ln in d.lines if str(ln.account.account_id) == detail), "")
        return _total_exceeded(f"account {number}" if number else "an account")
    if state == "KN003":
        return Conflict(
            "insufficient_balance",
            f"{exc.args[0] if exc.args else 'an account would go negative'}"
            "; the account does not allow a negative balance",
        )
    return _reversal_refused(exc) or InvariantViolation(f"database refused a validated posting: {exc!r}")


def _reversal_refused(exc: asyncpg.PostgresError) -> Exception | None:
    if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == "entries_reversed_once":
        return Conflict("entry_already_reversed", "the entry has already been reversed")
    if isinstance(exc, asyncpg.ForeignKeyViolationError) and "reverses" in (exc.constraint_name or ""):
        return NotFound("entry_not_found", "the entry to reverse does not exist")
    return None


def _total_exceeded(what: str) -> Unprocessable:
    limit = ACCOUNT_TOTAL_MINOR_MAX
    return Unprocessable(
        "account_total_exceeded",
        f"{what}: an account's debits, and its credits, add up to at most {limit:,} minor units per currency "
        "over its history (ACCOUNT_TOTAL_MINOR_MAX); this posting would exceed that, so nothing was posted",
        [FieldError("lines", f"the account total would exceed {limit:,} minor units")],
    )


def _check_totals(drafts: Sequence[EntryDraft]) -> None:
    """The posting's own sums per account, currency and side within the account bound (the database checks
    them with the account's history; this refuses an oversized batch before it is sent)."""
    sums: dict[tuple[int, str, Side], int] = {}
    for draft in drafts:
        for line in draft.lines:
            key = (line.account.account_id, line.currency, line.side)
            sums[key] = sums.get(key, 0) + line.amount_minor
    for (account_id, currency, _), total in sums.items():
        if total > ACCOUNT_TOTAL_MINOR_MAX:
            number = next(ln.account.number for d in drafts for ln in d.lines if ln.account.account_id == account_id)
            raise _total_exceeded(f"account {number} ({currency})")


async def _call_post(ctx: Kontor, args: tuple[object, ...], idem_key: str | None) -> list[asyncpg.Record]:
    attempts = ctx.settings.db_retry_attempts_max
    for attempt in range(1, attempts + 1):
        try:
            return await ctx.pool.fetch(_POST_SQL, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "idempotency_keys_pkey" or attempt == attempts:
                raise
            # a concurrent request with the same key committed first: the next call replays it
        except RETRYABLE:
            if attempt == attempts:
                raise
        except CONNECTION_LOST:
            if idem_key is None or attempt == attempts:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class _Queued:
    """One request waiting in the process's posting queue."""

    business: Business
    rows: _Rows
    idem_key: str
    request_sha256: bytes


def _coalescer(ctx: Kontor) -> Coalescer[_Queued, list[asyncpg.Record]]:
    coalescer = ctx.post_coalescer
    if coalescer is None:
        s = ctx.settings

        async def send(items: Sequence[_Queued]) -> list[list[asyncpg.Record] | BaseException]:
            return await _send_coalesced(ctx, items)

        coalescer = ctx.post_coalescer = Coalescer(
            send,
            window_s=s.post_coalesce_window_ms / 1000,
            size_max=s.post_coalesce_entries_max,
            depth_max=s.post_queue_depth_max,
            in_flight_max=s.post_coalesce_in_flight_max,
        )
    return coalescer


async def _post_alone(ctx: Kontor, item: _Queued) -> list[asyncpg.Record]:
    slot = random.randrange(ctx.settings.balance_slots)  # noqa: S311  # spreads load, no security role
    return await _call_post(
        ctx, _arguments(item.business, item.rows, slot, item.idem_key, item.request_sha256), item.idem_key
    )


async def _send_coalesced(ctx: Kontor, items: Sequence[_Queued]) -> list[list[asyncpg.Record] | BaseException]:
    """Book `items` in one call of kontor_post_coalesced; each gets its rows, or the outcome of its own posting
    alone when the batch refused it (every refusal is then answered exactly as without coalescing)."""
    slot = random.randrange(ctx.settings.balance_slots)  # noqa: S311  # spreads load, no security role
    payload = [  # sent as jsonb: PostgreSQL parses it once
        {
            "q": q,
            "m": item.business.merchant_id,
            "b": item.business.code,
            "key": item.idem_key,
            "sha": item.request_sha256.hex(),
            "e": item.rows.entries,
            "l": item.rows.lines,
        }
        for q, item in enumerate(items)
    ]
    try:
        rows = await ctx.pool.fetch(_COALESCED_SQL, slot, payload)
    except (asyncpg.PostgresError, *CONNECTION_LOST):
        # refused whole (the account bound, a deadlock) or the outcome is unknown (connection lost): nothing is
        # answered from it; each request is posted alone, one after the other (the account bound is checked on
        # committed sums), and its key replays what may have been committed
        metrics.POST_BATCHES_SPLIT.inc()
        alone: list[list[asyncpg.Record] | BaseException] = []
        for item in items:
            try:
                alone.append(await _post_alone(ctx, item))
            except Exception as exc:  # that request's own outcome
                alone.append(exc)
        return alone
    booked: list[list[asyncpg.Record]] = [[] for _ in items]
    refused: list[int] = []
    for row in rows:
        if row["sqlstate"] is not None:
            refused.append(row["request"])
        else:
            booked[row["request"]].append(row)
    outcomes: list[list[asyncpg.Record] | BaseException] = list(booked)
    if refused:
        again = await asyncio.gather(*(_post_alone(ctx, items[q]) for q in refused), return_exceptions=True)
        for q, outcome in zip(refused, again, strict=True):
            outcomes[q] = outcome
    return outcomes


async def post_entries(
    ctx: Kontor,
    business: Business,
    drafts: Sequence[EntryDraft],
    *,
    idem_key: str | None,
    request_sha256: bytes,
    conn: Connection | None = None,
    coalesce: bool = False,
) -> Posted:
    """Post validated drafts atomically; replays the stored result for a known idempotency key.

    With `conn`, the posting joins the caller's open transaction (a use case that records its own rows
    with the entries); errors then propagate unretried, because the transaction is the caller's.
    With `coalesce`, a single keyed entry that touches no account that may not go negative shares its commit
    with other postings of this process (the module's docstring); the answer is the same. Unavailable (503)
    when the process's posting queue is full (KONTOR_POST_QUEUE_DEPTH_MAX).
    """
    _check_totals(drafts)
    rows_in = _rows(business, drafts)
    try:
        if (
            coalesce
            and conn is None
            and idem_key is not None
            and len(drafts) == 1
            and not rows_in.guarded
            and ctx.settings.post_coalesce_entries_max > 1
        ):
            try:
                rows = await _coalescer(ctx).submit(_Queued(business, rows_in, idem_key, request_sha256))
            except QueueFull as exc:
                raise Unavailable(
                    "posting_queue_full",
                    f"{exc}; retry shortly (KONTOR_POST_QUEUE_DEPTH_MAX)",
                    headers={"Retry-After": "1"},
                ) from None
        else:
            slot = random.randrange(ctx.settings.balance_slots)  # noqa: S311  # spreads load, no security role
            args = _arguments(business, rows_in, slot, idem_key, request_sha256)
            rows = await (conn.fetch(_POST_SQL, *args) if conn is not None else _call_post(ctx, args, idem_key))
    except asyncpg.PostgresError as exc:
        raise _translate(exc, business, drafts) from exc
    if rows and rows[0]["replayed"]:
        return await _replay(ctx, business, rows, request_sha256)
    metrics.ENTRIES_POSTED.inc(len(drafts))
    posted_by = _acting_key()
    return Posted(
        entries=[
            render_entry(business, row["entry_id"], row["recorded_at"], draft, None, posted_by)
            for row, draft in zip(rows, drafts, strict=True)
        ],
        replayed=False,
    )


async def _replay(ctx: Kontor, business: Business, rows: Sequence[asyncpg.Record], request_sha256: bytes) -> Posted:
    if rows[0]["request_sha256"] != request_sha256:
        raise Unprocessable(
            "idempotency_key_reused", "this Idempotency-Key was used for a different request; use a new key"
        )
    entries = await fetch_entries(ctx, business, [r["entry_id"] for r in rows])
    # the original answer was given before any reversal existed: replay it exactly
    return Posted(entries=[with_reversed_by(e, None) for e in entries], replayed=True)


async def replay_if_known(ctx: Kontor, business: Business, idem_key: str, request_sha256: bytes) -> Posted | None:
    rows = await ctx.pool.fetch(
        "SELECT unnest(entry_ids) AS entry_id, request_sha256 FROM idempotency_keys "
        "WHERE merchant_id = $1 AND idem_key = $2",
        business.merchant_id,
        idem_key,
    )
    return await _replay(ctx, business, rows, request_sha256) if rows else None


# --- reversal -----------------------------------------------------------------------------------------
async def reverse_entry(
    ctx: Kontor, business: Business, entry_id: int, body: ReversalIn, *, idem_key: str, request_sha256: bytes
) -> Posted:
    """Post the mirror entry of `entry_id`, linked to it; an entry is reversed at most once. Without a date it
    takes the original's date while that period is open, else today (`ledger.domain.reversal_date`).

    The reversal and its audit-trail action (`entry.reversed`, with `body.reason`) commit together.
    """
    replayed = await replay_if_known(ctx, business, idem_key, request_sha256)
    if replayed is not None:
        return replayed
    row, original = await entry_draft(ctx, business, entry_id)
    for guard in ctx.reversal_guards:  # a plugin's document is taken back through the plugin (409 otherwise)
        await guard(ctx, business, entry_id, dict(original.metadata or {}), original.order_reference)
    closed_through = await ctx.pool.fetchval(
        "SELECT closed_through FROM businesses WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    try:
        draft = reversal_of(
            original,
            entry_id=entry_id,
            effective_date=body.effective_date,
            today=ctx.today(),
            description=body.description,
            reason=body.reason,
            reversed_already=row["reversed_by"] is not None,
            is_reversal=row["reverses"] is not None,
            closed_through=closed_through,
        )
        async with ctx.pool.acquire() as conn, conn.transaction():
            posted = await post_entries(
                ctx, business, [draft], idem_key=idem_key, request_sha256=request_sha256, conn=conn
            )
            if not posted.replayed:
                await record_action(
                    conn,
                    business.merchant_id,
                    business.code,
                    "entry.reversed",
                    str(entry_id),
                    reason=body.reason,
                    details={"reversal": posted.entries[0].id},
                )
    except (asyncpg.UniqueViolationError, Conflict):
        # a concurrent request with the same key may have reversed it first: then this is its replay
        replayed = await replay_if_known(ctx, business, idem_key, request_sha256)
        if replayed is None:
            raise
        return replayed
    return posted
