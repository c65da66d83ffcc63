"""Reading the journal: one entry, pages of entries by filter, and the audit trail's actions, each rendered as
the API answers them (`render_entry`, also used by posting). Pages are keyset-paged by entry id (descending), the
cursor an opaque `e<id>`; the entry's posting key (name, role) comes from `api_keys`, which are never deleted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import asyncpg

from ledger.audit import ActionOut, PostedBy
from ledger.context import Kontor
from ledger.domain import (
    Business,
    EntryDraft,
    LineDraft,
    Side,
)
from ledger.errors import (
    BadRequest,
    NotFound,
)
from ledger.money import format_amount
from ledger.schemas import EntryOut, LineOut, Page
from ledger.tenancy import accounts_with, get_account
from ledger.textsafe import parse_ascii_int

if TYPE_CHECKING:
    pass

__all__ = [
    "EntryFilter",
    "decode_cursor",
    "encode_cursor",
    "entry_draft",
    "fetch_entries",
    "get_entry",
    "list_actions",
    "list_entries",
    "render_entry",
    "with_reversed_by",
]


def _render_line(no: int, line: LineDraft) -> LineOut:
    amount = format_amount(line.amount_minor, line.currency)
    return LineOut(
        line_no=no,
        account=line.account.number,
        customer=line.customer,
        currency=line.currency,
        debit=amount if line.side is Side.DEBIT else None,
        credit=amount if line.side is Side.CREDIT else None,
    )


def render_entry(
    business: Business,
    entry_id: int,
    recorded_at: object,
    draft: EntryDraft,
    reversed_by: int | None,
    posted_by: PostedBy | None,
) -> EntryOut:
    return EntryOut(
        id=entry_id,
        business=business.code,
        effective_date=draft.effective_date,
        recorded_at=recorded_at,  # type: ignore[arg-type]  # asyncpg gives datetime
        description=draft.description,
        reference=draft.reference,
        order_reference=draft.order_reference,
        metadata=dict(draft.metadata or {}),
        reverses=draft.reverses,
        reversed_by=reversed_by,
        posted_by=posted_by,
        lines=[_render_line(i + 1, line) for i, line in enumerate(draft.lines)],
    )


def _posted_by(row: asyncpg.Record) -> PostedBy | None:
    key_id = row["posted_by"]
    return None if key_id is None else PostedBy(key_id=key_id, name=row["key_name"], role=row["key_role"])


def with_reversed_by(entry: EntryOut, reversed_by: int | None) -> EntryOut:
    return EntryOut(
        id=entry.id,
        business=entry.business,
        effective_date=entry.effective_date,
        recorded_at=entry.recorded_at,
        description=entry.description,
        reference=entry.reference,
        order_reference=entry.order_reference,
        metadata=entry.metadata,
        reverses=entry.reverses,
        reversed_by=reversed_by,
        posted_by=entry.posted_by,
        lines=entry.lines,
    )


_ENTRY_COLUMNS = (
    "e.entry_id, e.effective_date, e.recorded_at, e.description, e.reference, e.order_reference, e.metadata, "
    "e.reverses, (SELECT r.entry_id FROM entries r WHERE r.merchant_id = e.merchant_id "
    "AND r.business = e.business AND r.reverses = e.entry_id) AS reversed_by, "
    "e.posted_by, k.name AS key_name, k.role AS key_role"
)
# the key that posted an entry, for the audit trail (keys are never deleted, only revoked)
_ENTRY_FROM = "entries e LEFT JOIN api_keys k ON k.merchant_id = e.merchant_id AND k.key_id = e.posted_by"


async def entry_draft(ctx: Kontor, business: Business, entry_id: int) -> tuple[asyncpg.Record, EntryDraft]:
    """One entry's row (with `reversed_by`, `reverses`) and its draft; 404 `entry_not_found`."""
    rows = await ctx.pool.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM {_ENTRY_FROM} WHERE e.merchant_id = $1 AND e.business = $2 AND e.entry_id = $3",
        business.merchant_id,
        business.code,
        entry_id,
    )
    if not rows:
        raise NotFound("entry_not_found", f"entry {entry_id} not found in business {business.code}")
    ((row, draft),) = await _drafts_of(ctx, business, rows, ctx.pool)
    return row, draft


async def _drafts_of(
    ctx: Kontor, business: Business, entry_rows: Sequence[asyncpg.Record], pool: asyncpg.Pool
) -> list[tuple[asyncpg.Record, EntryDraft]]:
    ids = [r["entry_id"] for r in entry_rows]
    line_rows = await pool.fetch(
        "SELECT entry_id, account_id, customer, side, amount_minor, currency FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND entry_id = ANY($3::bigint[]) ORDER BY entry_id, line_no",
        business.merchant_id,
        business.code,
        ids,
    )
    index = await accounts_with(ctx, business, ids=[r["account_id"] for r in line_rows])
    lines: dict[int, list[LineDraft]] = {i: [] for i in ids}
    for r in line_rows:
        lines[r["entry_id"]].append(
            LineDraft(
                account=index.by_id[r["account_id"]],
                side=Side(r["side"]),
                amount_minor=r["amount_minor"],
                currency=r["currency"],
                customer=r["customer"],
            )
        )
    return [
        (
            r,
            EntryDraft(
                effective_date=r["effective_date"],
                description=r["description"],
                lines=tuple(lines[r["entry_id"]]),
                reference=r["reference"],
                metadata=r["metadata"],
                reverses=r["reverses"],
                order_reference=r["order_reference"],
            ),
        )
        for r in entry_rows
    ]


async def fetch_entries(
    ctx: Kontor, business: Business, entry_ids: Sequence[int], pool: asyncpg.Pool | None = None
) -> list[EntryOut]:
    pool = pool or ctx.pool
    rows = await pool.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM {_ENTRY_FROM} WHERE e.merchant_id = $1 AND e.business = $2 "
        "AND e.entry_id = ANY($3::bigint[]) ORDER BY e.entry_id",
        business.merchant_id,
        business.code,
        list(entry_ids),
    )
    return [
        render_entry(business, r["entry_id"], r["recorded_at"], draft, r["reversed_by"], _posted_by(r))
        for r, draft in await _drafts_of(ctx, business, rows, pool)
    ]


async def get_entry(ctx: Kontor, business: Business, entry_id: int) -> EntryOut:
    entries = await fetch_entries(ctx, business, [entry_id], ctx.reports_pool)
    if not entries:
        raise NotFound("entry_not_found", f"entry {entry_id} not found in business {business.code}")
    return entries[0]


@dataclass(frozen=True, slots=True)
class EntryFilter:
    from_date: date | None = None
    to_date: date | None = None
    account: str | None = None
    customer: str | None = None
    reference: str | None = None
    metadata: dict[str, str] | None = None
    descending: bool = False
    order_reference: str | None = None


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"e{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value = parse_ascii_int(text[1:]) if text.startswith("e") else None
        if value is None:
            raise ValueError(cursor)
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor_invalid", "the cursor is not one this service issued") from None


async def list_entries(
    ctx: Kontor, business: Business, where: EntryFilter, cursor: str | None, limit: int
) -> Page[EntryOut]:
    """Entries in recording order (or reversed), filtered, one page at a time (cursor = last id seen)."""
    clauses = ["e.merchant_id = $1", "e.business = $2"]
    params: list[object] = [business.merchant_id, business.code]

    def add(clause: str, value: object) -> None:
        params.append(value)
        clauses.append(clause.replace("$?", f"${len(params)}"))

    if where.from_date is not None:
        add("e.effective_date >= $?", where.from_date)
    if where.to_date is not None:
        add("e.effective_date <= $?", where.to_date)
    if where.reference is not None:
        add("e.reference = $?", where.reference)
    if where.order_reference is not None:
        add("e.order_reference = $?", where.order_reference)
    if where.metadata:
        add("e.metadata @> $?::jsonb", where.metadata)
    if where.account is not None:
        account = await get_account(ctx, business, where.account)
        add(
            "EXISTS (SELECT 1 FROM lines l WHERE l.merchant_id = e.merchant_id AND l.business = e.business "
            "AND l.entry_id = e.entry_id AND l.account_id = $?)",
            account.account_id,
        )
    if where.customer is not None:
        add(
            "EXISTS (SELECT 1 FROM lines l WHERE l.merchant_id = e.merchant_id AND l.business = e.business "
            "AND l.entry_id = e.entry_id AND l.customer = $?)",
            where.customer,
        )
    if cursor is not None:
        add("e.entry_id < $?" if where.descending else "e.entry_id > $?", decode_cursor(cursor))
    order = "DESC" if where.descending else "ASC"
    params.append(limit + 1)
    rows = await ctx.reports_pool.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM {_ENTRY_FROM} WHERE {' AND '.join(clauses)} "
        f"ORDER BY e.entry_id {order} LIMIT ${len(params)}",
        *params,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        render_entry(business, r["entry_id"], r["recorded_at"], draft, r["reversed_by"], _posted_by(r))
        for r, draft in await _drafts_of(ctx, business, rows, ctx.reports_pool)
    ]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None)


async def list_actions(
    ctx: Kontor, business: Business, action: str | None, cursor: str | None, limit: int
) -> Page[ActionOut]:
    """The business code's audit-trail actions, newest first, one page at a time."""
    before = decode_cursor(cursor) if cursor is not None else 2**63 - 1
    rows = await ctx.reports_pool.fetch(
        "SELECT a.action_id, a.at, a.action, a.subject, a.reason, a.details, a.key_id, k.name, k.role "
        "FROM audit_actions a LEFT JOIN api_keys k ON k.merchant_id = a.merchant_id AND k.key_id = a.key_id "
        "WHERE a.merchant_id = $1 AND a.business = $2 AND a.action_id < $3 AND ($4::text IS NULL OR a.action = $4) "
        "ORDER BY a.action_id DESC LIMIT $5",
        business.merchant_id,
        business.code,
        before,
        action,
        limit + 1,
    )
    items = [
        ActionOut(
            action_id=r["action_id"],
            at=r["at"],
            action=r["action"],
            subject=r["subject"],
            reason=r["reason"],
            details=r["details"],
            by=None if r["key_id"] is None else PostedBy(key_id=r["key_id"], name=r["name"], role=r["role"]),
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].action_id) if more and items else None)
