"""Bank statements (ISO 20022 CAMT.053): book every statement line as the bank sent it, match what it can, and
check the statement's balances.

The upload (a CAMT.053 document or a ZIP of them, as the body or the one file part of a form) is read by
`payments.camt` in a worker thread: safe XML, validated whole before anything is booked, errors naming
the element or the line and column. A batch entry carrying several payments (several `TxDtls` that add up to
it) arrives here as one line per payment.

Each booked (`Sts` BOOK) line is one journal entry of its own, dated on its booking day, its description and
metadata naming the statement line, the bank's reference and the counterparty (name and IBAN), in one
transaction per upload; what each line pays or clears, and how, is `payments.bank_matching`'s (payouts cleared,
invoices and orders paid in part or beyond, letters' RF references, anything else parked as an exception).
Pending lines (`Sts` PDNG) are reported, not booked. Then the statement's balances are checked
(`payments.statement_checks`): opening = the previous statement's closing, opening + lines = closing, closing =
the ledger's bank account; a failed check is an exception saying which figures differ by how much.

A statement is imported once, identified by account + statement Id + statement date (two accounts'
statements may share a short Id). The same statements again answer the stored result (200); a statement
whose identity was imported before with other content is a 409. Statements imported before they had an
identity (no account recorded) are matched by their Id alone, as they were then.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import msgspec
from msgspec import Struct

from ledger.books import accounts_by_role
from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict
from ledger.money import format_amount
from payments.camt import Statement, StatementKey, parse_statements
from payments.reconciliation import ExceptionDraft, note, park
from payments.settlement import ExceptionSummary
from payments.statement_checks import BalanceCheck, balance_text, check_statement
from payments.uploads import Upload, run_parser

if TYPE_CHECKING:
    from asyncpg import Record

    from ledger.db import Connection

from payments.bank_matching import LineResult, Matcher

__all__ = ["STATEMENT_BYTES_MAX", "StatementOut", "StatementRef", "import_statement"]

STATEMENT_BYTES_MAX = 32 * 1024 * 1024


class StatementRef(Struct, kw_only=True):
    account: str
    statement_id: str
    statement_date: date
    sequence: int | None = None  # ElctrncSeqNb, else LglSeqNb
    opening_balance: str | None = None  # signed: < 0 overdrawn
    closing_balance: str | None = None
    movements: str | None = None  # the booked lines' sum
    checks: list[BalanceCheck] = []  # msgspec copies mutable defaults


class StatementOut(Struct, kw_only=True):
    statement_ids: list[str]
    currency: str
    lines: list[LineResult]
    exception_count: int
    exceptions: list[ExceptionSummary]
    statements: list[StatementRef] = []


# --- importing -------------------------------------------------------------------------------------------
async def import_statement(
    ctx: Kontor, business: Business, upload: Upload, tolerance: int
) -> tuple[StatementOut, bool]:
    horizon = ctx.horizon()
    with upload.open() as source:  # parsed in a worker thread: the event loop keeps serving meanwhile
        statements = await run_parser(parse_statements, source, business.currency, horizon)

    async def work(conn: Connection) -> tuple[StatementOut, bool]:
        known = await _imported_without_identity(conn, business, statements)
        if not known:
            inserted = await _claim(conn, business, statements)
            if inserted == len(statements):
                return await _book(ctx, conn, business, statements, tolerance), True
            known = await _imported(conn, business, statements)
        return _replay(statements, known), False

    return await transaction_retrying(ctx.pool, ctx.settings.db_retry_attempts_max, work)


def _keys(statements: list[Statement]) -> tuple[list[str], list[str], list[date]]:
    return (
        [s.key.account for s in statements],
        [s.key.statement_id for s in statements],
        [s.key.statement_on for s in statements],
    )


async def _claim(conn: Connection, business: Business, statements: list[Statement]) -> int:
    """Record the statements as imported, with their sequence and balances; returns how many were new (a
    concurrent upload of the same statements waits here until the first one commits)."""
    inserted = await conn.fetch(
        "INSERT INTO bank_statements (merchant_id, business, account, statement_id, statement_on, file_sha256, "
        "summary, sequence, opening_minor, closing_minor, closing_on, movements_minor) "
        "SELECT $1, $2, u.a, u.i, u.d, u.h, '{}', u.q, u.o, u.c, u.cd, u.m "
        "FROM unnest($3::text[], $4::text[], $5::date[], $6::bytea[], $7::bigint[], $8::bigint[], $9::bigint[], "
        "$10::date[], $11::bigint[]) AS u(a, i, d, h, q, o, c, cd, m) "
        "ON CONFLICT DO NOTHING RETURNING statement_id",
        business.merchant_id,
        business.code,
        *_keys(statements),
        [s.content_sha256 for s in statements],
        [s.sequence for s in statements],
        [s.opening.amount if s.opening else None for s in statements],
        [s.closing.amount if s.closing else None for s in statements],
        [s.closing.on if s.closing else None for s in statements],
        [s.movements for s in statements],
    )
    return len(inserted)


async def _imported(conn: Connection, business: Business, statements: list[Statement]) -> list[Record]:
    return await conn.fetch(
        "SELECT b.account, b.statement_id, b.statement_on, b.file_sha256, b.summary FROM bank_statements b "
        "JOIN unnest($3::text[], $4::text[], $5::date[]) AS u(a, i, d) "
        "ON b.account = u.a AND b.statement_id = u.i AND b.statement_on = u.d "
        "WHERE b.merchant_id = $1 AND b.business = $2",
        business.merchant_id,
        business.code,
        *_keys(statements),
    )


async def _imported_without_identity(conn: Connection, business: Business, statements: list[Statement]) -> list[Record]:
    """Statements imported before their account and date were recorded: their Id is all that is known."""
    return await conn.fetch(
        "SELECT account, statement_id, statement_on, file_sha256, summary FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND account = '' AND statement_id = ANY($3::text[])",
        business.merchant_id,
        business.code,
        [s.key.statement_id for s in statements],
    )


def _replay(statements: list[Statement], known: list[Record]) -> StatementOut:
    """The stored result when every statement was imported before, with the same content, by one upload."""
    by_key = {(r["account"], r["statement_id"], r["statement_on"]): r for r in known}
    by_id = {r["statement_id"]: r for r in known if r["account"] == ""}
    found = [
        (s, by_key.get((s.key.account, s.key.statement_id, s.key.statement_on)) or by_id.get(s.key.statement_id))
        for s in statements
    ]
    seen = next(s for s, row in found if row is not None)
    rows = []
    for s, row in found:
        if row is None:
            raise Conflict(
                "statement_conflict",
                f"{_describe(seen.key)} was imported before; statements are imported once (upload the others alone)",
            )
        if bytes(row["file_sha256"]) not in (s.content_sha256, s.document_sha256):
            raise Conflict(
                "statement_conflict",
                f"{_describe(s.key)} was imported before with other content; statements are imported once",
            )
        rows.append(row)
    if any(r["summary"] != rows[0]["summary"] for r in rows):
        raise Conflict(
            "statement_conflict", "these statements were imported before by separate uploads; nothing is new"
        )
    return msgspec.convert(rows[0]["summary"], StatementOut, strict=False)


def _describe(key: StatementKey) -> str:
    return f"statement {key.statement_id} of account {key.account} dated {key.statement_on}"


async def _book(
    ctx: Kontor, conn: Connection, business: Business, statements: list[Statement], tolerance: int
) -> StatementOut:
    matcher = Matcher(ctx, conn, business, tolerance)
    results: list[LineResult] = []
    summaries: list[ExceptionSummary] = []
    for s in statements:  # each line booked on its own; the unmatched ones parked, one entry per line
        first = len(results)
        results += [await matcher.line(line) for line in s.lines]
        parked = [(i, draft) for i, draft in matcher.parked if i >= first]
        ids = await park(
            ctx, conn, business, source="bank", source_ref=s.key.ref, drafts=[d for _, d in parked],
            on=s.key.statement_on,
        )  # fmt: skip
        entries = await _parking_entries(conn, business, ids)
        for (i, draft), exception_id in zip(parked, ids, strict=True):
            results[i].exception_id, results[i].entry_id = exception_id, entries.get(exception_id)
            summaries.append(_summary(exception_id, draft, business.currency))
    bank = (await accounts_by_role(ctx, business))("BANK")
    refs = []
    for s in sorted(statements, key=lambda s: (s.key.account, s.key.statement_on, s.sequence or -1)):
        checked = await check_statement(conn, business, s, bank.account_id)
        ids = await note(conn, business, source="bank", source_ref=s.key.ref, drafts=[d for _, d in checked.exceptions])
        failed = iter(ids)
        for c in checked.checks:
            c.exception_id = next(failed) if c.outcome == "failed" else None
        summaries += [_summary(i, d, business.currency) for i, (_, d) in zip(ids, checked.exceptions, strict=True)]
        refs.append((s, checked.checks))
    by_key = {s.key: checks for s, checks in refs}
    out = StatementOut(
        statement_ids=[s.key.statement_id for s in statements],
        statements=[_reference(s, by_key[s.key], business.currency) for s in statements],
        currency=business.currency,
        lines=results,
        exception_count=len(summaries),
        exceptions=summaries[:100],
    )
    await conn.execute(
        "UPDATE bank_statements b SET summary = $6 FROM unnest($3::text[], $4::text[], $5::date[]) AS u(a, i, d) "
        "WHERE b.merchant_id = $1 AND b.business = $2 AND b.account = u.a AND b.statement_id = u.i "
        "AND b.statement_on = u.d",
        business.merchant_id,
        business.code,
        *_keys(statements),
        msgspec.to_builtins(out),
    )
    return out


def _reference(s: Statement, checks: list[BalanceCheck], currency: str) -> StatementRef:
    return StatementRef(
        account=s.key.account,
        statement_id=s.key.statement_id,
        statement_date=s.key.statement_on,
        sequence=s.sequence,
        opening_balance=balance_text(s.opening, currency),
        closing_balance=balance_text(s.closing, currency),
        movements=format_amount(s.movements, currency),
        checks=checks,
    )


async def _parking_entries(conn: Connection, business: Business, exception_ids: list[int]) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT exception_id, suspense_entry_id FROM reconciliation_exceptions WHERE merchant_id = $1 "
        "AND exception_id = ANY($2::bigint[])",
        business.merchant_id,
        exception_ids,
    )
    return {r["exception_id"]: r["suspense_entry_id"] for r in rows}


def _summary(exception_id: int, draft: ExceptionDraft, currency: str) -> ExceptionSummary:
    return ExceptionSummary(
        exception_id=exception_id,
        line=draft.line_no,
        kind=draft.kind,
        amount=format_amount(draft.amount, currency),
        description=draft.description,
    )
