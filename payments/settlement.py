"""Amazon Pay settlement reports: parse, book, reconcile (docs/amazon-pay.md §5, docs/accounting.md "Reconciliation").

The flat file is validated whole before anything is booked (`payments.settlement_parse`, streamed in a
worker thread so the event loop keeps serving): every row's net must equal its amount plus its fees, the
fee components must add up, every row belongs to the one settlement and the business code's currency;
errors name the line and the column, and the upload then books nothing (422).

Then, in one transaction (so a crash leaves either the whole settlement or nothing), the rows are reconciled
(`payments.settlement_reconcile`, by the rules of `payments.settlement_rules`):
- the rows are stored (COPY) and reconciled set-based: every capture and refund Kontor booked is
  settled exactly once and with the same amount (one UPDATE ... FROM per kind: a 100,000-row report
  is a handful of statements, not 100,000 round trips);
- what the ledger has not booked yet but the row proves is booked from the row: a capture Amazon
  completed, a refund that completed, a chargeback or A-to-z claim (once, even when the IPN reported
  it too), a chargeback paid back (the dispute is then won);
- fees of all rows (and authorization fees) are one entry Dr PSP_FEE / Cr PSP; each reserve row moves
  PSP <-> PSP_RESERVE; each Transfer row is a payout Dr TRANSIT / Cr PSP (or, positive, a balance
  repayment Amazon collects from the bank: Dr PSP / Cr TRANSIT), cleared later by the bank statement;
- everything else (unknown transactions, amounts that differ, rows settled before, types without a
  rule) becomes a reconciliation exception with its amount parked in SUSPENSE.
PSP then equals what Amazon still owes outside the reserve.

A settlement is identified by what it says, not by its bytes (`content_sha256`: the account, the period and the
rows without their SettlementId): the same settlement again, whatever file carries it (other line endings,
encoding, separators, quoting), answers the stored result (201, Idempotent-Replayed); another content under the
same SettlementId is a 409 `settlement_conflict`; the same rows under another SettlementId are a 409
`settlement_duplicate` (their fees, reserve and payout are booked already). Within a file, a transaction settled
before, or a Transfer or Reserve row another settlement booked (same day, amount and Amazon's text), is an
`already_settled` exception: its net amount is parked and its fee not booked again.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

import msgspec

from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable
from payments.notify import emit
from payments.settings import amazon_merchant_id
from payments.settlement_parse import Report, parse_report
from payments.settlement_reconcile import reconcile
from payments.settlement_rules import ExceptionSummary, SettlementOut
from payments.uploads import Upload, run_parser

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "SETTLEMENT_BYTES_MAX",
    "ExceptionSummary",
    "SettlementOut",
    "content_sha256",
    "get_settlement",
    "import_settlement",
]

SETTLEMENT_BYTES_MAX = 128 * 1024 * 1024


async def import_settlement(
    ctx: Kontor, business: Business, upload: Upload, *, report_id: str | None = None
) -> tuple[SettlementOut, bool]:
    """Book and reconcile a settlement report (uploaded, or fetched through the Reporting API as `report_id`);
    returns the result and whether it was new."""
    with upload.open() as source:  # parsed in a worker thread: the event loop keeps serving meanwhile
        report = await run_parser(parse_report, source, business.currency)
    # rows dated after the posting horizon: 422 date_beyond_horizon naming them, nothing booked
    horizon = ctx.horizon()
    horizon.check(
        (f"line {r.line_no}, column TransactionPostedDate", r.posted_on)
        for r in report.rows
        if r.posted_on > horizon.last
    )
    merchant_id = await amazon_merchant_id(ctx, business)
    if report.seller_id != merchant_id:
        raise Unprocessable(
            "seller_mismatch",
            f"the report is for Amazon merchant {report.seller_id}; business code {business.code} is {merchant_id}",
            [FieldError("line 3, column SellerId", "another merchant's report")],
        )
    digest, content = upload.sha256, await asyncio.to_thread(content_sha256, report)

    async def work(conn: Connection) -> tuple[SettlementOut, bool]:
        await _refuse_duplicate(conn, business, report.settlement_id, content)
        # no conflict target: every unique index arbitrates, so a concurrent import of the same file or of the
        # same rows waits for the other transaction and then finds its row instead of failing on an index
        stored = await conn.fetchrow(
            "INSERT INTO settlements (merchant_id, business, settlement_id, file_sha256, period_start, period_end, "
            "summary, report_id, content_sha256) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8) "
            "ON CONFLICT DO NOTHING RETURNING settlement_id",
            business.merchant_id,
            business.code,
            report.settlement_id,
            digest,
            report.period_start,
            report.period_end,
            report_id,
            content,
        )
        if stored is None:  # imported before, or its rows under another SettlementId
            return await _replay(conn, business, report.settlement_id, digest, content), False
        out = await reconcile(ctx, conn, business, report)
        await conn.execute(
            "UPDATE settlements SET summary = $4 WHERE merchant_id = $1 AND business = $2 AND settlement_id = $3",
            business.merchant_id,
            business.code,
            report.settlement_id,
            msgspec.to_builtins(out),
        )
        await emit(conn, business, "settlement.reconciled", msgspec.to_builtins(out))
        return out, True

    return await transaction_retrying(ctx.pool, ctx.settings.db_retry_attempts_max, work)


async def get_settlement(ctx: Kontor, business: Business, settlement_id: str) -> SettlementOut:
    summary = await ctx.pool.fetchval(
        "SELECT summary FROM settlements WHERE merchant_id = $1 AND business = $2 AND settlement_id = $3",
        business.merchant_id,
        business.code,
        settlement_id,
    )
    if summary is None:
        raise NotFound("settlement_not_found", f"settlement {settlement_id} was not imported")
    return msgspec.convert(summary, SettlementOut, strict=False)


def content_sha256(report: Report) -> bytes:
    """What a settlement says, whatever file carries it: the account, the period and every row without its
    SettlementId (line endings, encoding, separators, quoting and the title lines do not count)."""
    digest = hashlib.sha256(msgspec.json.encode([report.seller_id, report.period_start, report.period_end]))
    for r in report.rows:
        fields = [r.posted_on, r.type, r.transaction_id, r.seller_reference_id, r.order_reference_id, r.description]
        digest.update(msgspec.json.encode([*fields, r.amount, r.fee]))
    return digest.digest()


async def _refuse_duplicate(conn: Connection, business: Business, settlement_id: str, content: bytes) -> None:
    """409 `settlement_duplicate` when the same rows were imported under another SettlementId."""
    other = await conn.fetchval(
        "SELECT settlement_id FROM settlements WHERE merchant_id = $1 AND business = $2 AND content_sha256 = $3 "
        "AND settlement_id <> $4",
        business.merchant_id,
        business.code,
        content,
        settlement_id,
    )
    if other is not None:
        raise _duplicate(settlement_id, str(other))


def _duplicate(settlement_id: str, other: str | None) -> Conflict:
    where = f"settlement {other}" if other else "a settlement imported at the same time"
    return Conflict(
        "settlement_duplicate",
        f"the rows of settlement {settlement_id} are those of {where}, imported under another SettlementId: their "
        "fees, reserve and payout are booked; nothing was booked again",
        [FieldError("column SettlementId", f"the rows of {where}")],
    )


async def _replay(
    conn: Connection, business: Business, settlement_id: str, digest: bytes, content: bytes
) -> SettlementOut:
    row = await conn.fetchrow(
        "SELECT file_sha256, content_sha256, summary FROM settlements WHERE merchant_id = $1 AND business = $2 "
        "AND settlement_id = $3",
        business.merchant_id,
        business.code,
        settlement_id,
    )
    if row is None:  # the conflict was on the rows: they were imported under another SettlementId meanwhile
        await _refuse_duplicate(conn, business, settlement_id, content)
        raise _duplicate(settlement_id, None)
    if bytes(row["file_sha256"]) != digest and bytes(row["content_sha256"] or b"") != content:
        raise Conflict(
            "settlement_conflict",
            f"settlement {settlement_id} was imported before from another file; a settlement is imported once",
        )
    return msgspec.convert(row["summary"], SettlementOut, strict=False)
