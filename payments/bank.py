"""Bank statements (ISO 20022 CAMT.053): book every booked statement line and match what it can.

Parsing is safe: defusedxml refuses DTDs, entity declarations and external references (no billion
laughs, no XXE); tags are read without their namespace, so camt.053.001.02 to .08 all work. The whole
file is validated before anything is booked; errors name the element (`Stmt[1]/Ntry[3]/Amt`) or, for
XML that does not parse, the line and column.

Each booked (`Sts` BOOK) line, in one transaction per file:
- a credit equal to an uncleared Amazon Pay payout (preferably the one whose settlement id the remittance
  names) clears it: Dr BANK / Cr TRANSIT; a debit equal to a balance repayment Amazon collects clears
  that: Dr TRANSIT / Cr BANK;
- a credit whose remittance text or end-to-end id names an invoice reference (or else a customer) is a
  customer's bank transfer when it is within the tolerance of the invoice's amount or of what the
  customer owes: Dr BANK / Cr AR (customer), recorded as the order's payment document for an invoice;
- anything else becomes a reconciliation exception, parked in SUSPENSE against BANK (debits too: money
  out of the bank needs an accountant's classification).
Pending lines (`Sts` PDNG) are reported, not booked. The same file again answers the stored result; a
statement id already imported from another file is a 409.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml import DefusedXmlException
from msgspec import Struct

from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount
from payments.bookings import book, roles_of
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance
from payments.reconciliation import ExceptionDraft, park
from payments.settlement import ExceptionSummary
from payments.store import insert_document

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["STATEMENT_BYTES_MAX", "StatementOut", "import_statement", "parse_statement"]

STATEMENT_BYTES_MAX = 32 * 1024 * 1024
ENTRIES_MAX = 100_000
_TOKEN = re.compile(r"[A-Za-z0-9_./:-]+")


class Line(NamedTuple):
    statement_id: str
    entry_no: int  # 1-based position of the Ntry in its Stmt
    amount: int  # signed: + credit to the account
    booked: bool
    booking_date: date
    reference: str  # AcctSvcrRef or NtryRef, for people
    remittance: str  # Ustrd/Strd texts and end-to-end ids, for matching
    counterparty: str


class Statement(NamedTuple):
    statement_id: str
    iban: str
    lines: list[Line]


class LineResult(Struct, kw_only=True):
    statement_id: str
    entry: int
    amount: str
    booking_date: date
    outcome: str  # payout_cleared, payment, exception, pending
    match: str | None
    entry_id: int | None


class StatementOut(Struct, kw_only=True):
    statement_ids: list[str]
    currency: str
    lines: list[LineResult]
    exception_count: int
    exceptions: list[ExceptionSummary]


# --- parsing ---------------------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(node: Element, *path: str) -> Element | None:
    for name in path:
        found = next((c for c in node if _local(c.tag) == name), None)
        if found is None:
            return None
        node = found
    return node


def _text(node: Element | None, *path: str) -> str:
    found = None if node is None else _child(node, *path)
    return (found.text or "").strip() if found is not None else ""


def _children(node: Element, name: str) -> list[Element]:
    return [c for c in node if _local(c.tag) == name]


def _texts(node: Element, name: str) -> list[str]:
    return [(e.text or "").strip() for e in node.iter() if _local(e.tag) == name and (e.text or "").strip()]


def _invalid(errors: list[FieldError]) -> Unprocessable:
    return Unprocessable(
        "invalid_bank_statement", "the bank statement is not a valid CAMT.053; nothing was booked", errors
    )


def parse_statement(body: bytes, currency: str) -> list[Statement]:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except ParseError as exc:
        at_line, column = exc.position
        where = f"line {at_line}, column {column + 1}"  # expat counts columns from 0
        raise _invalid([FieldError(where, f"not well-formed XML: {exc.msg}")]) from exc
    except DefusedXmlException as exc:
        raise _invalid([FieldError("document", f"forbidden XML construct: {type(exc).__name__}")]) from exc
    report = _child(root, "BkToCstmrStmt")
    if _local(root.tag) != "Document" or report is None:
        raise _invalid([FieldError("Document/BkToCstmrStmt", "not a CAMT.053 bank-to-customer statement")])
    errors: list[FieldError] = []
    statements = []
    count = 0
    for s_no, stmt in enumerate(_children(report, "Stmt"), start=1):
        where = f"Stmt[{s_no}]"
        statement_id = _text(stmt, "Id")
        if not statement_id or len(statement_id) > 35:
            errors.append(FieldError(f"{where}/Id", "required, at most 35 characters"))
        account_ccy = _child(stmt, "Acct", "Ccy")
        if account_ccy is not None and (account_ccy.text or "").strip() != currency:
            errors.append(FieldError(f"{where}/Acct/Ccy", f"{account_ccy.text!r}: this business code books {currency}"))
        lines = []
        for n_no, ntry in enumerate(_children(stmt, "Ntry"), start=1):
            count += 1
            line = _entry(ntry, f"{where}/Ntry[{n_no}]", statement_id, n_no, currency, errors)
            if line is not None:
                lines.append(line)
        statements.append(Statement(statement_id, _text(stmt, "Acct", "Id", "IBAN"), lines))
    if not statements:
        errors.append(FieldError("Document/BkToCstmrStmt/Stmt", "the file has no statement"))
    if count > ENTRIES_MAX:
        errors.append(FieldError("Document/BkToCstmrStmt/Stmt", f"more than {ENTRIES_MAX} entries in one file"))
    ids = [s.statement_id for s in statements]
    if len(set(ids)) != len(ids):
        errors.append(FieldError("Document/BkToCstmrStmt/Stmt/Id", "statement ids repeat within the file"))
    if errors:
        raise _invalid(errors[:50])
    return statements


def _entry(
    ntry: Element, where: str, statement_id: str, n_no: int, currency: str, errors: list[FieldError]
) -> Line | None:
    before = len(errors)
    amt = _child(ntry, "Amt")
    amount = 0
    if amt is None:
        errors.append(FieldError(f"{where}/Amt", "required"))
    elif amt.get("Ccy") != currency:
        errors.append(FieldError(f"{where}/Amt/@Ccy", f"{amt.get('Ccy')!r}: this business code books {currency}"))
    else:
        try:
            amount = parse_amount((amt.text or "").strip(), currency)
        except AmountError as exc:
            errors.append(FieldError(f"{where}/Amt", str(exc)))
    indicator = _text(ntry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        errors.append(FieldError(f"{where}/CdtDbtInd", "CRDT or DBIT required"))
    status = _child(ntry, "Sts")  # <Sts>BOOK</Sts> up to .001.04, <Sts><Cd>BOOK</Cd></Sts> after
    state = (_text(status, "Cd") if status is not None and len(status) else _text(ntry, "Sts")) or "BOOK"
    when = _text(ntry, "BookgDt", "Dt") or _text(ntry, "BookgDt", "DtTm") or _text(ntry, "ValDt", "Dt")
    try:
        on = date.fromisoformat(when[:10]) if when else None
    except ValueError:
        on = None
    if on is None:
        errors.append(FieldError(f"{where}/BookgDt/Dt", "a booking date (YYYY-MM-DD) is required"))
    if len(errors) != before or on is None:
        return None
    reference = next(iter(_texts(ntry, "AcctSvcrRef") + _texts(ntry, "NtryRef")), f"{statement_id}/{n_no}")
    remittance = " ".join(_texts(ntry, "Ustrd") + _texts(ntry, "Ref") + _texts(ntry, "EndToEndId"))
    party = " ".join(_texts(ntry, "Nm")[:1])
    return Line(
        statement_id,
        n_no,
        amount if indicator == "CRDT" else -amount,
        state != "PDNG",
        on,
        reference[:64],
        remittance[:2000],
        party[:140],
    )


# --- importing -------------------------------------------------------------------------------------------
async def import_statement(ctx: Kontor, business: Business, body: bytes, tolerance: int) -> tuple[StatementOut, bool]:
    statements = parse_statement(body, business.currency)
    digest = hashlib.sha256(body).digest()
    ids_in_file = [s.statement_id for s in statements]

    async def work(conn: Connection) -> tuple[StatementOut, bool]:
        inserted = await conn.fetch(
            "INSERT INTO bank_statements (merchant_id, business, statement_id, file_sha256, summary) "
            "SELECT $1, $2, unnest($3::text[]), $4, '{}' ON CONFLICT DO NOTHING RETURNING statement_id",
            business.merchant_id,
            business.code,
            ids_in_file,
            digest,
        )  # a concurrent upload of the same statement waits here until the first one commits
        if len(inserted) != len(statements):
            known = await conn.fetch(
                "SELECT statement_id, file_sha256, summary FROM bank_statements WHERE merchant_id = $1 "
                "AND business = $2 AND statement_id = ANY($3::text[]) ORDER BY statement_id",
                business.merchant_id,
                business.code,
                ids_in_file,
            )
            if not inserted and all(bytes(r["file_sha256"]) == digest for r in known):
                return msgspec.convert(known[0]["summary"], StatementOut, strict=False), False
            clash = next(r["statement_id"] for r in known if r["statement_id"] not in {i[0] for i in inserted})
            raise Conflict(
                "statement_conflict",
                f"statement {clash} was imported before from another file; statements are imported once",
            )
        return await _book(ctx, conn, business, statements, tolerance), True

    return await transaction_retrying(ctx.pool, ctx.settings.db_retry_attempts_max, work)


async def _book(
    ctx: Kontor, conn: Connection, business: Business, statements: list[Statement], tolerance: int
) -> StatementOut:
    matcher = _Matcher(ctx, conn, business, tolerance)
    results = [await matcher.line(line) for s in statements for line in s.lines]
    ids = []
    for s in statements:
        drafts = [d for d in matcher.exceptions if d[0] == s.statement_id]
        ids += await park(
            ctx,
            conn,
            business,
            source="bank",
            source_ref=s.statement_id,
            drafts=[d[1] for d in drafts],
            on=max(line.booking_date for line in s.lines) if s.lines else ctx.today(),
        )
    parked = [d[1] for d in matcher.exceptions]
    out = StatementOut(
        statement_ids=[s.statement_id for s in statements],
        currency=business.currency,
        lines=results,
        exception_count=len(ids),
        exceptions=[
            ExceptionSummary(
                exception_id=eid,
                line=d.line_no,
                kind=d.kind,
                amount=format_amount(d.amount, business.currency),
                description=d.description,
            )
            for eid, d in list(zip(ids, parked, strict=True))[:100]
        ],
    )
    await conn.execute(
        "UPDATE bank_statements SET summary = $4 WHERE merchant_id = $1 AND business = $2 "
        "AND statement_id = ANY($3::text[])",
        business.merchant_id,
        business.code,
        out.statement_ids,
        msgspec.to_builtins(out),
    )
    return out


class _Matcher:
    def __init__(self, ctx: Kontor, conn: Connection, business: Business, tolerance: int) -> None:
        self.ctx, self.conn, self.business, self.tolerance = ctx, conn, business, tolerance
        self.exceptions: list[tuple[str, ExceptionDraft]] = []

    def _result(self, line: Line, outcome: str, match: str | None, entry_id: int | None) -> LineResult:
        return LineResult(
            statement_id=line.statement_id,
            entry=line.entry_no,
            amount=format_amount(line.amount, self.business.currency),
            booking_date=line.booking_date,
            outcome=outcome,
            match=match,
            entry_id=entry_id,
        )

    def _park(self, line: Line, kind: str, description: str) -> LineResult:
        text = f"{description}; {line.reference}" + (f", {line.counterparty}" if line.counterparty else "")
        self.exceptions.append(
            (line.statement_id, ExceptionDraft(line.entry_no, kind, f"{text}: {line.remittance}"[:1000], line.amount))
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
        paid = await self._payment(line, tokens)
        if paid is not None:
            return paid
        return self._park(line, "unmatched_credit", "no payout, invoice or customer matches")

    async def _payout(self, line: Line, tokens: list[str]) -> LineResult | None:
        payout = await self.conn.fetchrow(
            "SELECT settlement_id, line_no FROM payouts WHERE merchant_id = $1 AND business = $2 "
            "AND amount_minor = $3 AND cleared_by IS NULL "
            "ORDER BY settlement_id = ANY($4::text[]) DESC, posted_on, settlement_id LIMIT 1 FOR UPDATE",
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
            metadata={"bank_statement": line.statement_id, "settlement_id": payout["settlement_id"]},
        )
        await self.conn.execute(
            "UPDATE payouts SET cleared_by = $5, clearing_entry_id = $6 WHERE merchant_id = $1 AND business = $2 "
            "AND settlement_id = $3 AND line_no = $4",
            self.business.merchant_id,
            self.business.code,
            payout["settlement_id"],
            payout["line_no"],
            f"{line.statement_id}/{line.entry_no}",
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
        reference = invoice["order_ref"] if invoice is not None else customer
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(roles("BANK"), roles("AR"), line.amount, self.business.currency, customer=customer),
            on=line.booking_date,
            description=f"Bank transfer for {what} ({line.reference})",
            reference=reference[:64],
            metadata={"bank_statement": line.statement_id},
        )
        amount = format_amount(line.amount, self.business.currency)
        payment: dict[str, Any] = {"customer": customer, "amount": amount, "currency": self.business.currency}
        if invoice is not None:
            ref = _document_ref(line)
            await insert_document(
                self.conn,
                self.business,
                order_ref=invoice["order_ref"],
                kind="payment",
                ref=ref,
                document_date=line.booking_date,
                gross=line.amount,
                entry_id=entry_id,
                details={"method": "BANK_TRANSFER", "statement": line.statement_id, "entry": line.entry_no},
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
        await emit_balance(self.ctx, self.conn, self.business, customer, "payment.received", on=line.booking_date)
        return self._result(line, "payment", what, entry_id)


def _document_ref(line: Line) -> str:
    """A payment document reference (<= 32 of [A-Za-z0-9_./-]) unique per statement line."""
    digest = hashlib.sha256(f"{line.statement_id}\x00{line.entry_no}".encode()).hexdigest()[:12]
    return f"BANK-{line.booking_date:%Y%m%d}-{digest}"
