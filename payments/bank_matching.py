"""Matching a bank statement line: what each booked line pays or clears, and the entry that books it.

Called by `payments.bank` for every booked line of an upload, inside its transaction (`Matcher.line`):
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
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from ledger.books import accounts_by_role, book, customer_balance, run_receivable_hooks
from ledger.context import Kontor
from ledger.domain import Business
from ledger.money import format_amount
from payments.camt import Line
from payments.domain import transfer_lines
from payments.notify import emit, emit_balance_updated
from payments.reconciliation import ExceptionDraft
from payments.remittance import Named, Remittance, recognise
from payments.store import insert_document

if TYPE_CHECKING:
    from ledger.db import Connection


__all__ = ["LineResult", "Matcher"]

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


class Matcher:
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
