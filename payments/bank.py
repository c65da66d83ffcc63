"""Bank statements (ISO 20022 CAMT.053): book every statement line as the bank sent it, match what it can, and
check the statement's balances.

The upload (a CAMT.053 document or a ZIP of them, as the body or the one file part of a form) is read by
`payments.camt` in a worker thread: safe XML, validated whole before anything is booked, errors naming
the element or the line and column. A batch entry carrying several payments (several `TxDtls` that add up to
it) arrives here as one line per payment.

Each booked (`Sts` BOOK) line is one journal entry of its own, dated on its booking day, its description and
metadata naming the statement line, the bank's reference and the counterparty (name and IBAN), in one
transaction per upload:
- a credit equal to an uncleared Amazon Pay payout (preferably the one whose settlement id or Amazon
  disbursement reference the remittance names) clears it: Dr BANK / Cr TRANSIT; a debit equal to a balance
  repayment Amazon collects clears that: Dr TRANSIT / Cr BANK;
- a credit whose remittance names an invoice or an order (`payments.remittance`, where new reference patterns
  are added) pays it, whatever the amount: Dr BANK / Cr AR (customer), recorded as the order's payment
  document; a part payment leaves the rest due, an overpayment leaves the customer a credit balance (a
  prepayment received); a credit naming a payment reference Kontor printed (a dunning letter's ISO 11649 RF
  reference, `payments.references`) or only a customer is booked so when within the tolerance of the amount the
  letter asked for or of what the customer owes;
- anything else becomes a reconciliation exception, parked in SUSPENSE against BANK by an entry of its own
  (debits too: money out of the bank needs an accountant's classification).
Pending lines (`Sts` PDNG) are reported, not booked. Then the statement's balances are checked
(`payments.statement_checks`): opening = the previous statement's closing, opening + lines = closing, closing =
the ledger's bank account; a failed check is an exception saying which figures differ by how much.

A statement is imported once, identified by account + statement Id + statement date (two accounts'
statements may share a short Id). The same statements again answer the stored result (200); a statement
whose identity was imported before with other content is a 409. Statements imported before they had an
identity (no account recorded) are matched by their Id alone, as they were then.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from ledger.books import accounts_by_role, book, customer_balance, run_receivable_hooks
from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict
from ledger.money import format_amount
from payments.camt import Line, Statement, StatementKey, parse_statements
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated
from payments.reconciliation import ExceptionDraft, note, park
from payments.remittance import Named, Remittance, recognise
from payments.settlement import ExceptionSummary
from payments.statement_checks import BalanceCheck, balance_text, check_statement
from payments.store import insert_document
from payments.uploads import Upload, run_parser

if TYPE_CHECKING:
    from asyncpg import Record

    from ledger.db import Connection

__all__ = ["STATEMENT_BYTES_MAX", "LineResult", "StatementOut", "StatementRef", "import_statement"]

STATEMENT_BYTES_MAX = 32 * 1024 * 1024
REMITTANCE_SHOWN = 280  # characters of the remittance a line result shows (matching reads all of it)


class LineResult(Struct, kw_only=True):
    statement_id: str
    entry: int
    amount: str
    booking_date: date
    outcome: str  # payout_cleared, payment, exception, pending
    match: str | None
    entry_id: int | None  # the line's journal entry (the booking, or the parking in SUSPENSE)
    account: str = ""  # of the statement (results stored before statements had an identity have none)
    detail: int | None = None  # the payment's position in a batch entry that was split into its payments
    # as the bank sent it (results stored before these were kept have ""):
    reference: str = ""  # the bank's reference of the entry (AcctSvcrRef, else NtryRef)
    counterparty_name: str = ""  # the debtor of money in, the creditor of money out
    counterparty_iban: str = ""  # their account: IBAN, else the account's other id
    remittance: str = ""  # remittance information (the first REMITTANCE_SHOWN characters)
    note: str = ""  # a payment: what is still due, or what became the customer's credit
    exception_id: int | None = None  # outcome exception: the reconciliation exception


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
    matcher = _Matcher(ctx, conn, business, tolerance)
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


def _party(line: Line) -> str:
    """The counterparty as people read it: "Erika Mustermann (DE89370400440532013000)"."""
    if line.counterparty and line.counterparty_iban:
        return f"{line.counterparty} ({line.counterparty_iban})"
    return line.counterparty or line.counterparty_iban


def _line_metadata(line: Line) -> dict[str, str]:
    """What every booking of a statement line records of it (journal metadata: searchable, exported)."""
    metadata = {"bank_statement": line.statement.ref, "bank_line": _line_ref(line)[len(line.statement.ref) + 1 :],
                "bank_reference": line.reference}  # fmt: skip
    if line.counterparty:
        metadata["counterparty_name"] = line.counterparty
    if line.counterparty_iban:
        metadata["counterparty_iban"] = line.counterparty_iban
    return metadata


class _Matcher:
    def __init__(self, ctx: Kontor, conn: Connection, business: Business, tolerance: int) -> None:
        self.ctx, self.conn, self.business, self.tolerance = ctx, conn, business, tolerance
        self.parked: list[tuple[int, ExceptionDraft]] = []  # (position of the line's result, the exception)
        self.count = 0  # lines seen

    def _money(self, minor: int) -> str:
        return format_amount(minor, self.business.currency)

    def _result(self, line: Line, outcome: str, match: str | None, entry_id: int | None, note: str = "") -> LineResult:
        self.count += 1
        return LineResult(
            statement_id=line.statement.statement_id,
            account=line.statement.account,
            entry=line.entry_no,
            detail=line.detail_no or None,
            amount=self._money(line.amount),
            booking_date=line.booking_date,
            outcome=outcome,
            match=match,
            entry_id=entry_id,
            reference=line.reference,
            counterparty_name=line.counterparty,
            counterparty_iban=line.counterparty_iban,
            remittance=line.remittance[:REMITTANCE_SHOWN],
            note=note,
        )

    def _park(self, line: Line, kind: str, description: str) -> LineResult:
        party = _party(line)
        text = f"{description}; {line.reference}" + (f", {party}" if party else "")
        draft = ExceptionDraft(
            line.entry_no,
            kind,
            f"{text}: {line.remittance}"[:1000],
            line.amount,
            on=line.booking_date,
            booking_text=f"Bank line {line.reference} parked in suspense ({kind})"
            + (f", {party}" if party else "")
            + (f": {line.remittance}" if line.remittance else ""),
            metadata=_line_metadata(line),
            reference=_document_ref(line),  # one per line, short enough for DATEV's Belegfeld 1 (36)
        )
        self.parked.append((self.count, draft))
        return self._result(line, "exception", None, None)

    async def line(self, line: Line) -> LineResult:
        if not line.booked:
            return self._result(line, "pending", None, None)
        remittance = Remittance.of(line.remittance)
        cleared = await self._payout(line, remittance.tokens)
        if cleared is not None:
            return cleared
        if line.amount < 0:
            return self._park(line, "unmatched_debit", "money out of the bank")
        named = await recognise(self.conn, self.business, remittance)
        if named is None:
            return self._park(line, "unmatched_credit", "no payout, invoice, order or customer matches")
        owed = await customer_balance(self.conn, self.business, named.customer)
        targets = [t for t in (named.asked, owed) if t is not None]
        if not named.document and not any(abs(line.amount - t) <= self.tolerance for t in targets):
            asked = f" ({self._money(named.asked)} asked)" if named.asked is not None else ""
            return self._park(
                line,
                "amount_outside_tolerance",
                f"{self._money(line.amount)} arrived naming {named.what}{asked}, but {self._money(owed)} is open "
                f"(tolerance {self._money(self.tolerance)})",
            )
        return await self._payment(line, named, owed)

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
        roles = await accounts_by_role(self.ctx, self.business)
        bank, transit = roles("BANK"), roles("TRANSIT")
        received = line.amount > 0
        party = _party(line)
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(
                bank if received else transit, transit if received else bank, abs(line.amount), self.business.currency
            ),
            on=line.booking_date,
            description=f"Amazon Pay {'payout' if received else 'balance repayment'} of settlement "
            f"{payout['settlement_id']} {'received' if received else 'collected'} ({line.reference}"
            + (f", {party}" if party else "")
            + ")",
            reference=payout["settlement_id"],
            metadata=_line_metadata(line) | {"settlement_id": payout["settlement_id"]},
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

    def _still_due(self, named: Named, owed: int, paid: int) -> str:
        after = owed - paid
        if after > 0:
            return f"customer {named.customer} owed {self._money(owed)}: {self._money(after)} still due"
        if after < 0:
            return (
                f"customer {named.customer} owed {self._money(owed)}: {self._money(-after)} more than owed is the "
                "customer's credit (a prepayment received)"
            )
        return f"customer {named.customer} owed {self._money(owed)}: paid in full"

    async def _payment(self, line: Line, named: Named, owed: int) -> LineResult:
        roles = await accounts_by_role(self.ctx, self.business)
        customer = named.customer
        party = _party(line)
        note = self._still_due(named, owed, line.amount)
        ref = _document_ref(line)  # the payment document's number, when the payment is an order's
        metadata = _line_metadata(line)
        if named.payment_reference is not None:
            metadata["payment_reference"] = named.payment_reference
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(roles("BANK"), roles("AR"), line.amount, self.business.currency, customer=customer),
            on=line.booking_date,
            description=f"Bank transfer for {named.what} ({line.reference}" + (f", {party}" if party else "") + ")",
            # what the payment pays, for open-item matching (DATEV OPOS): the letter's or the invoice's number
            reference=(named.payment_reference or named.invoice_ref or (ref if named.order_ref else customer))[:64],
            metadata=metadata,
            order_reference=named.order_ref,
        )
        amount = self._money(line.amount)
        payment: dict[str, Any] = {"customer": customer, "amount": amount, "currency": self.business.currency}
        if named.payment_reference is not None:
            payment |= {"payment_reference": named.payment_reference, "order_references": list(named.orders)}
        if named.order_ref is not None:
            await insert_document(
                self.conn,
                self.business,
                order_ref=named.order_ref,
                kind="payment",
                ref=ref,
                document_date=line.booking_date,
                gross=line.amount,
                entry_id=entry_id,
                details=_payment_details(line),
                response={"payment_reference": ref, "entry_id": entry_id},
                request_sha256=bytes(32),
            )
            payment |= {"order_reference": named.order_ref, "payment_reference": ref}
        if named.invoice_ref is not None:
            payment["invoice_reference"] = named.invoice_ref
        remaining = self._money(owed - line.amount)
        await emit(
            self.conn,
            self.business,
            "payment.received",
            payment
            | {
                "method": "BANK_TRANSFER",
                "entry_id": entry_id,
                "matched_by": named.what,
                "remaining_amount": remaining,
            },
        )
        await run_receivable_hooks(
            self.ctx, self.conn, self.business, customer, on=line.booking_date, designation=named.order_ref
        )
        await emit_balance_updated(self.conn, self.business, customer, "payment.received")
        return self._result(line, "payment", named.what, entry_id, note)


def _document_ref(line: Line) -> str:
    """A payment document reference (<= 32 of [A-Za-z0-9_./-]) unique per statement line: the payment document's
    number, and the reference of a parked line's entry (DATEV Belegfeld 1: 36 characters)."""
    digest = hashlib.sha256(_line_ref(line).encode()).hexdigest()[:12]
    return f"BANK-{line.booking_date:%Y%m%d}-{digest}"


def _payment_details(line: Line) -> dict[str, Any]:
    """What the payment document records of the statement line it came from."""
    details: dict[str, Any] = {"method": "BANK_TRANSFER", "statement": line.statement.ref, "entry": line.entry_no}
    return details | ({"payment": line.detail_no} if line.detail_no else {})


def _line_ref(line: Line) -> str:
    """The statement line (and, in a split batch entry, the payment): account/Id/date/entry[.payment]."""
    return f"{line.statement.ref}/{line.entry_no}" + (f".{line.detail_no}" if line.detail_no else "")
