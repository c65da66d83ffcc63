"""Bank statements (ISO 20022 CAMT.053): book every booked statement line and match what it can.

The upload (a CAMT.053 document or a ZIP of them, as the body or the one file part of a form) is read by
`payments.camt` in a worker thread: safe XML, validated whole before anything is booked, errors naming
the element or the line and column. A batch entry carrying several payments arrives here as one line per
payment.

Each booked (`Sts` BOOK) line, in one transaction per upload:
- a credit equal to an uncleared Amazon Pay payout (preferably the one whose settlement id or Amazon
  disbursement reference the remittance names) clears it: Dr BANK / Cr TRANSIT; a debit equal to a balance repayment Amazon collects clears
  that: Dr TRANSIT / Cr BANK;
- a credit whose remittance names a payment reference Kontor printed (a dunning letter's ISO 11649 RF reference,
  `payments.references`) is that customer's payment when it is within the tolerance of the amount the letter asked
  for or of what the customer owes: Dr BANK / Cr AR (customer);
- a credit whose remittance text or end-to-end id names an invoice reference (or else a customer) is a
  customer's bank transfer when it is within the tolerance of the invoice's amount or of what the
  customer owes: Dr BANK / Cr AR (customer), recorded as the order's payment document for an invoice;
- anything else becomes a reconciliation exception, parked in SUSPENSE against BANK (debits too: money
  out of the bank needs an accountant's classification).
Pending lines (`Sts` PDNG) are reported, not booked.

A statement is imported once, identified by account + statement Id + statement date (two accounts'
statements may share a short Id). The same statements again answer the stored result (200); a statement
whose identity was imported before with other content is a 409. Statements imported before they had an
identity (no account recorded) are matched by their Id alone, as they were then.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict
from ledger.money import format_amount
from payments import references
from payments.bookings import book, roles_of
from payments.camt import Line, Statement, StatementKey, parse_statements
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance
from payments.reconciliation import ExceptionDraft, park
from payments.settlement import ExceptionSummary
from payments.store import insert_document
from payments.uploads import Upload, run_parser

if TYPE_CHECKING:
    from asyncpg import Record

    from ledger.db import Connection

__all__ = ["STATEMENT_BYTES_MAX", "StatementOut", "StatementRef", "import_statement"]

STATEMENT_BYTES_MAX = 32 * 1024 * 1024
_TOKEN = re.compile(r"[A-Za-z0-9_./:-]+")


class LineResult(Struct, kw_only=True):
    statement_id: str
    entry: int
    amount: str
    booking_date: date
    outcome: str  # payout_cleared, payment, exception, pending
    match: str | None
    entry_id: int | None
    account: str = ""  # of the statement (results stored before statements had an identity have none)
    detail: int | None = None  # the payment's position in a batch entry that was split into its payments


class StatementRef(Struct, kw_only=True):
    account: str
    statement_id: str
    statement_date: date


class StatementOut(Struct, kw_only=True):
    statement_ids: list[str]
    currency: str
    lines: list[LineResult]
    exception_count: int
    exceptions: list[ExceptionSummary]
    statements: list[StatementRef] = []  # msgspec copies mutable defaults


# --- importing -------------------------------------------------------------------------------------------
async def import_statement(
    ctx: Kontor, business: Business, upload: Upload, tolerance: int
) -> tuple[StatementOut, bool]:
    with upload.open() as source:  # parsed in a worker thread: the event loop keeps serving meanwhile
        statements = await run_parser(parse_statements, source, business.currency)

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
    """Record the statements as imported; returns how many were new (a concurrent upload of the same
    statements waits here until the first one commits)."""
    inserted = await conn.fetch(
        "INSERT INTO bank_statements (merchant_id, business, account, statement_id, statement_on, file_sha256, "
        "summary) SELECT $1, $2, u.a, u.i, u.d, u.h, '{}' "
        "FROM unnest($3::text[], $4::text[], $5::date[], $6::bytea[]) AS u(a, i, d, h) "
        "ON CONFLICT DO NOTHING RETURNING statement_id",
        business.merchant_id,
        business.code,
        *_keys(statements),
        [s.content_sha256 for s in statements],
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
    matcher = _Matcher(ctx, conn, business, tolerance)
    results = [await matcher.line(line) for s in statements for line in s.lines]
    ids = []
    for s in statements:
        drafts = [d for d in matcher.exceptions if d[0] == s.key]
        ids += await park(
            ctx,
            conn,
            business,
            source="bank",
            source_ref=s.key.ref,
            drafts=[d[1] for d in drafts],
            on=max(line.booking_date for line in s.lines) if s.lines else ctx.today(),
        )
    parked = [d[1] for d in matcher.exceptions]
    out = StatementOut(
        statement_ids=[s.key.statement_id for s in statements],
        statements=[
            StatementRef(account=s.key.account, statement_id=s.key.statement_id, statement_date=s.key.statement_on)
            for s in statements
        ],
        currency=business.currency,
        lines=results,
        exception_count=len(ids),
        exceptions=[_summary(eid, d, business.currency) for eid, d in list(zip(ids, parked, strict=True))[:100]],
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


def _summary(exception_id: int, draft: ExceptionDraft, currency: str) -> ExceptionSummary:
    return ExceptionSummary(
        exception_id=exception_id,
        line=draft.line_no,
        kind=draft.kind,
        amount=format_amount(draft.amount, currency),
        description=draft.description,
    )


class _Matcher:
    def __init__(self, ctx: Kontor, conn: Connection, business: Business, tolerance: int) -> None:
        self.ctx, self.conn, self.business, self.tolerance = ctx, conn, business, tolerance
        self.exceptions: list[tuple[StatementKey, ExceptionDraft]] = []

    def _result(self, line: Line, outcome: str, match: str | None, entry_id: int | None) -> LineResult:
        return LineResult(
            statement_id=line.statement.statement_id,
            account=line.statement.account,
            entry=line.entry_no,
            detail=line.detail_no or None,
            amount=format_amount(line.amount, self.business.currency),
            booking_date=line.booking_date,
            outcome=outcome,
            match=match,
            entry_id=entry_id,
        )

    def _park(self, line: Line, kind: str, description: str) -> LineResult:
        text = f"{description}; {line.reference}" + (f", {line.counterparty}" if line.counterparty else "")
        self.exceptions.append(
            (line.statement, ExceptionDraft(line.entry_no, kind, f"{text}: {line.remittance}"[:1000], line.amount))
        )
        return self._result(line, "exception", None, None)

    async def line(self, line: Line) -> LineResult:
        if not line.booked:
            return self._result(line, "pending", None, None)
        tokens = _TOKEN.findall(line.remittance)
        cleared = await self._payout(line, tokens)
        if cleared is not None:
            return cleared
        if line.amount < 0:
            return self._park(line, "unmatched_debit", "money out of the bank")
        paid = await self._requested(line)
        if paid is None:
            paid = await self._payment(line, tokens)
        if paid is not None:
            return paid
        return self._park(line, "unmatched_credit", "no payout, invoice or customer matches")

    async def _payout(self, line: Line, tokens: list[str]) -> LineResult | None:
        payout = await self.conn.fetchrow(
            "SELECT settlement_id, line_no FROM payouts WHERE merchant_id = $1 AND business = $2 "
            "AND amount_minor = $3 AND cleared_by IS NULL "
            "ORDER BY (settlement_id = ANY($4::text[]) OR disbursement_reference = ANY($4::text[])) DESC, posted_on, "
            "settlement_id LIMIT 1 FOR UPDATE",
            self.business.merchant_id,
            self.business.code,
            line.amount,
            tokens,
        )
        if payout is None:
            return None
        roles = await roles_of(self.ctx, self.business)
        bank, transit = roles("BANK"), roles("TRANSIT")
        received = line.amount > 0
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(
                bank if received else transit, transit if received else bank, abs(line.amount), self.business.currency
            ),
            on=line.booking_date,
            description=f"Amazon Pay {'payout' if received else 'balance repayment'} of settlement "
            f"{payout['settlement_id']} {'received' if received else 'collected'}",
            reference=payout["settlement_id"],
            metadata={"bank_statement": line.statement.ref, "settlement_id": payout["settlement_id"]},
        )
        await self.conn.execute(
            "UPDATE payouts SET cleared_by = $5, clearing_entry_id = $6 WHERE merchant_id = $1 AND business = $2 "
            "AND settlement_id = $3 AND line_no = $4",
            self.business.merchant_id,
            self.business.code,
            payout["settlement_id"],
            payout["line_no"],
            _line_ref(line),
            entry_id,
        )
        return self._result(line, "payout_cleared", f"settlement {payout['settlement_id']}", entry_id)

    async def _owed(self, customer: str) -> int:
        owed: int = await self.conn.fetchval(
            "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0)::bigint FROM lines "
            "WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND currency = $4",
            self.business.merchant_id,
            self.business.code,
            customer,
            self.business.currency,
        )
        return owed

    async def _requested(self, line: Line) -> LineResult | None:
        """A credit naming a payment reference Kontor printed (a dunning letter's RF reference): the customer's
        payment when it is within the tolerance of the amount asked or of what the customer owes now."""
        requested = await references.find(self.conn, self.business, line.remittance)
        if requested is None:
            return None
        customer, what = requested.customer, f"payment reference {requested.reference}"
        owed = await self._owed(customer)
        if not any(abs(line.amount - t) <= self.tolerance for t in (requested.amount_minor, owed)):
            asked = format_amount(requested.amount_minor, self.business.currency)
            open_text = format_amount(owed, self.business.currency)
            return self._park(
                line, "amount_outside_tolerance", f"names {what} ({asked} asked), but {open_text} is open"
            )
        roles = await roles_of(self.ctx, self.business)
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(roles("BANK"), roles("AR"), line.amount, self.business.currency, customer=customer),
            on=line.booking_date,
            description=f"Bank transfer for {what} ({line.reference})",
            reference=requested.reference,
            metadata={"bank_statement": line.statement.ref, "payment_reference": requested.reference},
        )
        payment: dict[str, Any] = {
            "customer": customer,
            "amount": format_amount(line.amount, self.business.currency),
            "currency": self.business.currency,
            "method": "BANK_TRANSFER",
            "entry_id": entry_id,
            "matched_by": what,
            "payment_reference": requested.reference,
            "order_references": requested.orders,
        }
        await emit(self.conn, self.business, "payment.received", payment)
        await emit_balance(self.ctx, self.conn, self.business, customer, "payment.received", on=line.booking_date)
        return self._result(line, "payment", what, entry_id)

    async def _payment(self, line: Line, tokens: list[str]) -> LineResult | None:
        if not tokens:
            return None
        invoice = await self.conn.fetchrow(
            "SELECT d.ref, d.order_ref, d.gross_minor, o.customer FROM order_documents d "
            "JOIN orders o USING (merchant_id, business, order_ref) WHERE d.merchant_id = $1 AND d.business = $2 "
            "AND d.kind = 'invoice' AND d.ref = ANY($3::text[]) ORDER BY d.document_date, d.ref LIMIT 1",
            self.business.merchant_id,
            self.business.code,
            tokens,
        )
        targets: tuple[int, ...]
        if invoice is not None:
            customer = invoice["customer"]
            targets = (invoice["gross_minor"], await self._owed(customer))
            what = f"invoice {invoice['ref']}"
        else:
            customer = await self.conn.fetchval(
                "SELECT customer FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = ANY($3::text[]) "
                "LIMIT 1",
                self.business.merchant_id,
                self.business.code,
                tokens,
            )
            if customer is None:
                return None
            targets = (await self._owed(customer),)
            what = f"customer {customer}"
        if not any(abs(line.amount - t) <= self.tolerance for t in targets):
            open_text = format_amount(targets[-1], self.business.currency)
            return self._park(line, "amount_outside_tolerance", f"names {what}, but {open_text} is open")
        roles = await roles_of(self.ctx, self.business)
        ref = _document_ref(line)  # the payment document's number, for an invoice
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(roles("BANK"), roles("AR"), line.amount, self.business.currency, customer=customer),
            on=line.booking_date,
            description=f"Bank transfer for {what} ({line.reference})",
            reference=ref if invoice is not None else customer[:64],
            metadata={"bank_statement": line.statement.ref},
            order_reference=invoice["order_ref"] if invoice is not None else None,
        )
        amount = format_amount(line.amount, self.business.currency)
        payment: dict[str, Any] = {"customer": customer, "amount": amount, "currency": self.business.currency}
        if invoice is not None:
            await insert_document(
                self.conn,
                self.business,
                order_ref=invoice["order_ref"],
                kind="payment",
                ref=ref,
                document_date=line.booking_date,
                gross=line.amount,
                entry_id=entry_id,
                details=_payment_details(line),
                response={"payment_reference": ref, "entry_id": entry_id},
                request_sha256=bytes(32),
            )
            payment |= {"order_reference": invoice["order_ref"], "payment_reference": ref}
        await emit(
            self.conn,
            self.business,
            "payment.received",
            payment | {"method": "BANK_TRANSFER", "entry_id": entry_id, "matched_by": what},
        )
        await emit_balance(
            self.ctx,
            self.conn,
            self.business,
            customer,
            "payment.received",
            on=line.booking_date,
            designation=invoice["order_ref"] if invoice is not None else None,
        )
        return self._result(line, "payment", what, entry_id)


def _document_ref(line: Line) -> str:
    """A payment document reference (<= 32 of [A-Za-z0-9_./-]) unique per statement line."""
    digest = hashlib.sha256(_line_ref(line).encode()).hexdigest()[:12]
    return f"BANK-{line.booking_date:%Y%m%d}-{digest}"


def _payment_details(line: Line) -> dict[str, Any]:
    """What the payment document records of the statement line it came from."""
    details: dict[str, Any] = {"method": "BANK_TRANSFER", "statement": line.statement.ref, "entry": line.entry_no}
    return details | ({"payment": line.detail_no} if line.detail_no else {})


def _line_ref(line: Line) -> str:
    """The statement line (and, in a split batch entry, the payment): account/Id/date/entry[.payment]."""
    return f"{line.statement.ref}/{line.entry_no}" + (f".{line.detail_no}" if line.detail_no else "")
