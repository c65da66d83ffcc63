"""What each row of an Amazon Pay settlement means for the ledger: the decisions, with no database and no I/O.

Split from `payments.settlement_reconcile` (which looks the rows' transactions up, books and stores them) so the
rules read and test alone (docs/accounting.md "Reconciliation"):
- which rule a row follows (`rule_of`): empty rows book nothing, chargebacks and A-to-z claims one rule, Capture,
  Refund, Transfer, Reserve and Authorization their own, any other type is an `unclassified` exception;
- when a row is an exception and which (`Finding`s: `unknown_capture`, `unknown_refund`, `unknown_order`,
  `unknown_reversal`, `reversal_of_lost_dispute`, `already_settled`, `amount_mismatch`, `unclassified`), with
  the amount parked: the row's amount; its net (amount plus fee) when it was settled before, its fee then not
  booked again; the difference to the ledger for a mismatch;
- how money between PSP and another account is posted (`psp_lines`: payouts, reserves, fees);
- the summary an import answers (`Tally.summary`).
Amounts are signed integer minor units as the report has them (+ money Amazon owes the merchant).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from msgspec import Struct

from ledger.domain import Account, LineDraft
from ledger.money import format_amount
from payments.domain import transfer_lines
from payments.reconciliation import ExceptionDraft
from payments.settlement_parse import CHARGEBACK_TYPES, Report, Row

__all__ = [
    "EXCEPTIONS_LISTED",
    "RULES",
    "ExceptionSummary",
    "Finding",
    "SettlementOut",
    "Tally",
    "booked_before",
    "booking_text",
    "capture_finding",
    "fees_total",
    "psp_lines",
    "refund_finding",
    "reversal_finding",
    "reversal_of_lost",
    "rule_of",
    "settled_before",
    "unclassified",
    "unknown_order",
]

EXCEPTIONS_LISTED = 100
RULES = ("Capture", "Refund", "Transfer", "Reserve", "Authorization")  # transaction types with their own rule


class ExceptionSummary(Struct, kw_only=True):
    exception_id: int
    line: int
    kind: str
    amount: str
    description: str


class SettlementOut(Struct, kw_only=True):
    settlement_id: str
    seller_id: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    rows: int
    totals: dict[str, str]  # gross per transaction type, and fees
    outcomes: dict[str, int]  # rows per outcome: matched, booked, fee, reserve, payout, exception, empty
    entries: list[int]  # its own entries: fees, reserves, payouts (rows booked as captures etc. link theirs)
    exception_count: int
    exceptions: list[ExceptionSummary]  # the first 100; GET .../reconciliation/exceptions has all


class Finding(NamedTuple):
    """Why a row is an exception: its kind and a sentence naming the transaction."""

    kind: str
    description: str


def rule_of(row: Row) -> str:
    """`empty` (no amount, no fee), `chargeback` (Chargeback, A-to-z Guarantee Claim), the type itself when it is
    one of `RULES`, else `unclassified`."""
    if row.amount == 0 and row.fee == 0:
        return "empty"
    if row.type in CHARGEBACK_TYPES:
        return "chargeback"
    return row.type if row.type in RULES else "unclassified"


def settled_before(row: Row, what: str, settlement_id: str) -> Finding:
    return Finding("already_settled", f"{what} {row.transaction_id} was settled before, in {settlement_id}")


def capture_finding(row: Row, state: str | None, settled_in: str | None) -> Finding | None:
    """A Capture row against the charge Kontor knows (`state` None: none): None when it is to be matched or booked."""
    if state is None or state in ("Declined", "Canceled"):
        why = "is not in the ledger" if state is None else f"is {state} in the ledger"
        return Finding("unknown_capture", f"capture {row.transaction_id} {why}")
    return None if settled_in is None else settled_before(row, "capture", settled_in)


def refund_finding(row: Row, state: str | None, settled_in: str | None) -> Finding | None:
    """A Refund row against the refund Kontor knows (`state` None: none): None when it is to be matched or booked."""
    if state is None or state == "Declined":
        seen = "" if state is None else " (Kontor saw it declined)"
        return Finding("unknown_refund", f"refund {row.transaction_id} is not in the ledger{seen}")
    return None if settled_in is None else settled_before(row, "refund", settled_in)


def unknown_order(row: Row) -> Finding:
    return Finding(
        "unknown_order",
        f"{row.type} {row.transaction_id} for Amazon order {row.order_reference_id!r}, which no order has",
    )


def reversal_finding(row: Row, known: bool, paid_back_in: str | None) -> Finding | None:
    """A positive chargeback row (Amazon paid it back): None when the chargeback is known and not paid back yet."""
    if known and paid_back_in is None:
        return None
    why = "is not in the ledger" if not known else f"was paid back before, in {paid_back_in}"
    return Finding("unknown_reversal", f"chargeback {row.transaction_id} {why}")


def reversal_of_lost(row: Row, dispute_id: int) -> Finding:
    return Finding(
        "reversal_of_lost_dispute",
        f"chargeback {row.transaction_id} paid back, but dispute {dispute_id} was recorded lost",
    )


def unclassified(row: Row) -> Finding:
    return Finding("unclassified", f"{row.type} row: no booking rule; classify it ({row.description})")


def booked_before(row: Row, currency: str, settlement_id: str) -> Finding:
    """A Transfer or Reserve row (no transaction id) that another settlement booked: the same type, day, amount
    and Amazon's text."""
    return Finding(
        "already_settled",
        f"{row.type} row of {format_amount(row.amount, currency)} on {row.posted_on} ({row.description}) "
        f"was booked before, in settlement {settlement_id}",
    )


def psp_lines(amount: int, psp: Account, other: Account, currency: str) -> tuple[LineDraft, ...]:
    """Money between PSP (what Amazon owes) and another account, `amount` signed as the report has it: negative
    (a payout, a reserve held, fees) Dr other / Cr PSP, positive (a balance repayment, a reserve released, fees
    refunded) Dr PSP / Cr other, for its absolute value."""
    if amount < 0:
        return transfer_lines(other, psp, -amount, currency)
    return transfer_lines(psp, other, amount, currency)


def booking_text(kind: str, amount: int, settlement_id: str) -> str:
    """The entry's description for a Transfer or Reserve row (signed amount) or a settlement's `fees`."""
    what = {
        "Transfer": "payout" if amount < 0 else "balance repayment",
        "Reserve": f"reserve {'held' if amount < 0 else 'released'}",
    }.get(kind, kind)
    return f"Amazon Pay {what}, settlement {settlement_id}"


def fees_total(rows: Iterable[Row], parked: set[int]) -> int:
    """The settlement's fees, signed: every row's fee and the whole amount of Authorization rows (a fee too), but
    not those of rows parked as settled before (`parked`: their line numbers)."""
    return sum(r.fee + (r.amount if r.type == "Authorization" else 0) for r in rows if r.line_no not in parked)


class Tally:
    """The outcome of each row not matched in bulk, the exceptions found and the entries booked, as a
    settlement is reconciled."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.outcome: dict[int, str] = {}  # line -> booked, fee, reserve, payout, exception, empty, matched
        self.entries: list[int] = []
        self.exceptions: list[ExceptionDraft] = []
        self.fees_parked: set[int] = set()  # lines whose fee is parked with them, not booked

    def exception(self, row: Row, finding: Finding) -> None:
        """Park the row: its amount, or its net (amount plus fee) when settled before, its fee then not booked."""
        amount = row.amount
        if finding.kind == "already_settled":
            self.fees_parked.add(row.line_no)
            amount += row.fee
        self.outcome[row.line_no] = "exception"
        self.exceptions.append(ExceptionDraft(row.line_no, finding.kind, finding.description, amount))

    def compare(self, row: Row, what: str, ledger_amount: int, outcome: str) -> None:
        """The row's amount against the ledger's (signed as the report has it): `outcome` when equal, else an
        `amount_mismatch` exception parking the difference."""
        if row.amount == ledger_amount:
            self.outcome[row.line_no] = outcome
            return
        self.outcome[row.line_no] = "exception"
        self.exceptions.append(
            ExceptionDraft(
                row.line_no,
                "amount_mismatch",
                f"{what} {row.transaction_id}: the report says {format_amount(row.amount, self.currency)}, "
                f"the ledger {format_amount(ledger_amount, self.currency)}",
                row.amount - ledger_amount,
            )
        )

    def summary(self, report: Report, matched: int, exception_ids: list[int]) -> SettlementOut:
        """The import's answer; `matched`: rows matched in bulk, `exception_ids`: the parked exceptions' ids."""
        currency = self.currency
        totals: Counter[str] = Counter()
        for r in report.rows:
            totals[r.type] += r.amount
            totals["fees"] += r.fee
        outcomes = Counter(self.outcome.values())
        if matched:
            outcomes["matched"] += matched
        return SettlementOut(
            settlement_id=report.settlement_id,
            seller_id=report.seller_id,
            currency=currency,
            period_start=report.period_start,
            period_end=report.period_end,
            rows=len(report.rows),
            totals={k: format_amount(v, currency) for k, v in sorted(totals.items())},
            outcomes=dict(sorted(outcomes.items())),
            entries=self.entries,
            exception_count=len(exception_ids),
            exceptions=[
                ExceptionSummary(
                    exception_id=eid,
                    line=d.line_no,
                    kind=d.kind,
                    amount=format_amount(d.amount, currency),
                    description=d.description,
                )
                for eid, d in list(zip(exception_ids, self.exceptions, strict=True))[:EXCEPTIONS_LISTED]
            ],
        )
