"""The simulator's money side: settlement periods, the v1 flat-file settlement report, the Reporting API's
reports and documents, and disbursements (payouts).

Why separate: settlement is bookkeeping over the events the sale and after-sale operations record; it has its
own rules and its own ids, and Kontor reconciles against exactly this output.

Rules (docs/amazon-pay.md §5; developer.amazon.com/docs/amazon-pay-reports/*, amazon-pay-api-v2/reports.html):
- Every completed capture, completed refund, chargeback and chargeback reversal is a settlement event.
  `close_period` turns the events since the last period into a settlement: the same v1 flat-file CSV Amazon
  still delivers (`SETTLEMENT_COLUMNS`, UTF-8 BOM, five header lines, quoted, trailing comma), with
  AmazonOrderReferenceId = chargePermissionId, AmazonTransactionId = chargeId / refundId / disputeId,
  SellerReferenceId = the charge's merchantReferenceId, SellerOrderId = the permission's.
- The simulator's terms: capture fee 1.9 % (half-up) + 0.35 per capture, chargeback fee 15.00 (per merchant),
  reserve 5 % of the period's captures (the previous reserve released, the new one withheld), the payout a
  `Transfer` row (negative); a negative balance is collected from the merchant ("Balance repayment").
- Each settlement is a report `_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_` (COMPLETED) with a document
  `amzn1.tortuga.0.<uuid>.<n>`; a positive payout is a disbursement with an amazonDisbursementReferenceId.
- Reports are kept 90 days; a document URL is valid 30 seconds (simulated clock), then 403.
- `POST /reports` may only request the sandbox settlement report and transaction reports (Amazon: settlement
  reports are generated per settlement). The simulator completes them at once; the sandbox settlement report
  lists the events in [startTime, endTime] in the settlement layout without closing a period; transaction
  reports carry the simulator's own small layout (`TRANSACTION_COLUMNS`), not Amazon's (not published in full).
"""

from __future__ import annotations

import csv
import io
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.money import format_amount, minor_per_unit
from payments.amazon.sim_model import SettlementEvent, SimError, SimMerchant

__all__ = [
    "DOCUMENT_URL_TTL",
    "REPORT_RETENTION",
    "REQUESTABLE_REPORTS",
    "SANDBOX_SETTLEMENT_REPORT",
    "SETTLEMENT_COLUMNS",
    "SETTLEMENT_REPORT",
    "Books",
    "Payout",
    "SimReport",
    "close_period",
    "document_url",
    "open_document",
    "owed",
    "request_report",
]

SETTLEMENT_REPORT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"
SANDBOX_SETTLEMENT_REPORT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SANDBOX_SETTLEMENT_DATA_"
TRANSACTION_REPORTS = (
    "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_ORDER_REFERENCE_DATA_",
    "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_BILLING_AGREEMENT_DATA_",
    "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_AUTHORIZATION_DATA_",
    "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_CAPTURE_DATA_",
    "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_REFUND_DATA_",
)
REQUESTABLE_REPORTS = (SANDBOX_SETTLEMENT_REPORT, *TRANSACTION_REPORTS)
REPORT_RETENTION = timedelta(days=90)
DOCUMENT_URL_TTL = timedelta(seconds=30)
REPORTS_MAX = 10_000  # per merchant: older ones are dropped first
CAPTURE_FEE_PERMILLE = 19
CAPTURE_FEE_FIXED_CENTS = 35  # 0.35 in a two-decimal currency
SETTLEMENT_COLUMNS = [
    "TransactionPostedDate",
    "SettlementId",
    "AmazonTransactionId",
    "SellerReferenceId",
    "TransactionType",
    "AmazonOrderReferenceId",
    "SellerOrderId",
    "StoreName",
    "CurrencyCode",
    "TransactionDescription",
    "TransactionAmount",
    "TransactionPercentageFee",
    "TransactionFixedFee",
    "TotalTransactionFee",
    "NetTransactionAmount",
]
TRANSACTION_COLUMNS = ["AmazonTransactionId", "AmazonOrderReferenceId", "TransactionType", "Amount", "CurrencyCode"]
_STAMP = "%Y-%m-%dT%H:%M:%S +0000"
_ALNUM = string.ascii_uppercase + string.digits


@dataclass
class SimReport:
    report_id: str
    report_type: str
    created_at: datetime
    start: datetime
    end: datetime
    document_id: str
    status: str = "COMPLETED"


@dataclass(frozen=True)
class Payout:
    settlement_id: str
    reference_id: str  # amazonDisbursementReferenceId, printed on the bank statement
    amount: int
    currency: str
    at: datetime


@dataclass
class Books:
    """A merchant's settlement position and its reports."""

    reserve: int = 0
    settled_events: int = 0
    fees: int = 0  # fees charged in settlements (negative)
    transferred: int = 0  # paid out (positive); balance repayments collected count negative
    period_start: datetime | None = None
    reports: list[SimReport] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)
    payouts: list[Payout] = field(default_factory=list)
    urls: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # token -> (document id, expiry)


@dataclass
class _Row:
    posted_at: datetime
    kind: str
    transaction_id: str = ""
    seller_reference_id: str = ""
    order_reference_id: str = ""
    seller_order_id: str = ""
    store_name: str = ""
    description: str = ""
    amount: int = 0
    percentage_fee: int = 0
    fixed_fee: int = 0

    @property
    def fee(self) -> int:
        return self.percentage_fee + self.fixed_fee

    @property
    def net(self) -> int:
        return self.amount + self.fee


def owed(merchant: SimMerchant, books: Books) -> tuple[int, int]:
    """What Amazon owes the merchant outside the reserve, and the reserve it holds (minor units)."""
    return sum(e.amount for e in merchant.events) + books.fees - books.reserve - books.transferred, books.reserve


def _event_row(merchant: SimMerchant, event: SettlementEvent) -> _Row:
    permission = merchant.permissions.get(event.order_reference_id)
    row = _Row(
        event.posted_at,
        event.kind,
        event.transaction_id,
        event.seller_reference_id,
        event.order_reference_id,
        (permission.merchant_reference_id or "") if permission else "",
        (permission.store_name or "") if permission else "",
        amount=event.amount,
        fixed_fee=event.fee_fixed,
    )
    if event.kind == "Capture":
        row.percentage_fee = -((event.amount * CAPTURE_FEE_PERMILLE + 500) // 1000)
        row.fixed_fee = -(CAPTURE_FEE_FIXED_CENTS * minor_per_unit(merchant.currency) // 100)
    return row


def close_period(merchant: SimMerchant, books: Books, now: datetime) -> tuple[SimReport, str]:
    """Settle everything since the last period: -> its report and the CSV text."""
    events = merchant.events[books.settled_events :]
    books.settled_events = len(merchant.events)
    settlement_id = "".join(secrets.choice(string.digits) for _ in range(11))
    start = books.period_start or (events[0].posted_at if events else now)
    rows = [_event_row(merchant, e) for e in events]
    new_reserve = sum(e.amount for e in events if e.kind == "Capture") * merchant.reserve_percent // 100
    if books.reserve:
        rows.append(_Row(now, "Reserve", description="Previous Reserve Balance", amount=books.reserve))
    if new_reserve:
        rows.append(_Row(now, "Reserve", description="Current Reserve Amount", amount=-new_reserve))
    books.fees += sum(r.fee for r in rows)
    books.reserve = new_reserve
    payout = sum(r.net for r in rows)
    if payout:
        text = f"SellerPayments transfer {settlement_id}" if payout > 0 else f"Balance repayment {settlement_id}"
        rows.append(_Row(now, "Transfer", description=text, amount=-payout))
        books.transferred += payout
    if payout > 0:
        reference = "AMZN" + "".join(secrets.choice(_ALNUM) for _ in range(14))
        books.payouts.append(Payout(settlement_id, reference, payout, merchant.currency, now))
    text = settlement_csv(merchant, settlement_id, rows, start, now)
    report = _store(books, SETTLEMENT_REPORT, start, now, now, text)
    books.period_start = now
    return report, text


def settlement_csv(merchant: SimMerchant, settlement_id: str, rows: list[_Row], start: datetime, end: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=",\n")
    out.write('\ufeff"Amazon Payments Advanced",\n"Settlement Report",\n')
    out.write(f'"SellerId","{merchant.merchant_id}"\n')
    out.write(f'"SettlementStartDate","{start.strftime(_STAMP)}"\n')
    out.write(f'"SettlementEndDate","{end.strftime(_STAMP)}"\n')
    writer.writerow(SETTLEMENT_COLUMNS)
    money = merchant.currency
    for r in rows:
        values = [r.posted_at.strftime(_STAMP), settlement_id, r.transaction_id, r.seller_reference_id, r.kind]
        values += [r.order_reference_id, r.seller_order_id, r.store_name, money, r.description]
        values += [format_amount(v, money) for v in (r.amount, r.percentage_fee, r.fixed_fee, r.fee, r.net)]
        out.write(",".join(f'"{v}"' for v in values) + "\n")  # data rows: no trailing comma (published files)
    return out.getvalue()


def _store(books: Books, report_type: str, start: datetime, end: datetime, now: datetime, text: str) -> SimReport:
    report_id = "A" + "".join(secrets.choice(_ALNUM) for _ in range(20))
    document_id = f"amzn1.tortuga.0.{uuid.uuid4()}.T{secrets.randbelow(10**12):012d}"
    report = SimReport(report_id, report_type, now, start, end, document_id)
    books.reports.append(report)
    books.documents[document_id] = text.encode()
    while len(books.reports) > REPORTS_MAX or now - books.reports[0].created_at > REPORT_RETENTION:
        dropped = books.reports.pop(0)
        books.documents.pop(dropped.document_id, None)
    return report


def request_report(
    merchant: SimMerchant, books: Books, report_type: str, start: datetime, end: datetime, now: datetime
) -> SimReport:
    """POST /reports: the sandbox settlement report or a transaction report, completed at once."""
    if report_type not in REQUESTABLE_REPORTS:
        raise SimError(400, "InvalidParameterValue", f"reportType {report_type} cannot be requested")
    if end <= start:
        raise SimError(400, "InvalidParameterValue", "endTime must be after startTime")
    events = [e for e in merchant.events if start <= e.posted_at <= end]
    if report_type == SANDBOX_SETTLEMENT_REPORT:
        text = settlement_csv(merchant, "0", [_event_row(merchant, e) for e in events], start, end)
    else:
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(TRANSACTION_COLUMNS)
        for e in events:
            amount = format_amount(e.amount, merchant.currency)
            writer.writerow([e.transaction_id, e.order_reference_id, e.kind, amount, merchant.currency])
        text = out.getvalue()
    return _store(books, report_type, start, end, now, text)


def document_url(books: Books, document_id: str, base_url: str, now: datetime) -> str:
    """A pre-signed-style URL for a document, valid `DOCUMENT_URL_TTL`."""
    if document_id not in books.documents:
        raise SimError(404, "ResourceNotFound", f"report document {document_id} does not exist")
    for token, (_, expires) in list(books.urls.items()):
        if expires <= now:
            del books.urls[token]
    token = secrets.token_urlsafe(24)
    books.urls[token] = (document_id, now + DOCUMENT_URL_TTL)
    return f"{base_url}/s3/report-documents/{token}"


def open_document(books: Books, token: str, now: datetime) -> bytes | None:
    """The document behind a URL token, None when unknown or expired (the route answers 403 then)."""
    found = books.urls.get(token)
    if found is None or found[1] <= now:
        return None
    return books.documents.get(found[0])
