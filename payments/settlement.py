"""Amazon Pay settlement reports: parse, book, reconcile (docs/amazon-pay.md §5, docs/accounting.md "Reconciliation").

The flat file is validated whole before anything is booked (`payments.settlement_parse`, streamed in a
worker thread so the event loop keeps serving): every row's net must equal its amount plus its fees, the
fee components must add up, every row belongs to the one settlement and the business code's currency;
errors name the line and the column, and the upload then books nothing (422).

Then, in one transaction (so a crash leaves either the whole settlement or nothing):
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
`already_settled`
exception: its net amount is parked and its fee not booked again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from msgspec import Struct

from ledger.books import accounts_by_role, book
from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business, LineDraft, Side
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable, present
from ledger.money import format_amount
from payments.amazon.client import Amount, Charge, Refund
from payments.bookings import record_charge, record_refund
from payments.disputes import close_dispute, open_dispute_of, record_chargeback
from payments.domain import transfer_lines
from payments.notify import emit
from payments.reconciliation import ExceptionDraft, park
from payments.settlement_parse import CHARGEBACK_TYPES, Report, Row, parse_report
from payments.store import load_order, lock_order
from payments.uploads import Upload, run_parser

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "SETTLEMENT_BYTES_MAX",
    "ExceptionSummary",
    "SettlementOut",
    "get_settlement",
    "import_settlement",
]

SETTLEMENT_BYTES_MAX = 128 * 1024 * 1024
EXCEPTIONS_LISTED = 100
ROW_COLUMNS = (
    "merchant_id",
    "business",
    "settlement_id",
    "line_no",
    "transaction_type",
    "transaction_id",
    "seller_reference_id",
    "order_reference_id",
    "description",
    "amount_minor",
    "fee_minor",
    "posted_on",
    "outcome",
)


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


# --- importing -------------------------------------------------------------------------------------------
async def _amazon_merchant_id(ctx: Kontor, business: Business) -> str:
    found = await ctx.pool.fetchval(
        "SELECT amazon_merchant_id FROM amazon_pay_settings WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if found is None:
        raise Conflict(
            "amazon_pay_not_configured",
            f"business code {business.code} has no Amazon Pay settings; PUT .../amazon-pay/settings first",
        )
    return str(found)


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
    merchant_id = await _amazon_merchant_id(ctx, business)
    if report.seller_id != merchant_id:
        raise Unprocessable(
            "seller_mismatch",
            f"the report is for Amazon merchant {report.seller_id}; business code {business.code} is {merchant_id}",
            [FieldError("line 3, column SellerId", "another merchant's report")],
        )
    digest, content = upload.sha256, await asyncio.to_thread(content_sha256, report)

    async def work(conn: Connection) -> tuple[SettlementOut, bool]:
        await _refuse_duplicate(conn, business, report.settlement_id, content)
        try:
            stored = await conn.fetchrow(
                "INSERT INTO settlements (merchant_id, business, settlement_id, file_sha256, period_start, period_end, "
                "summary, report_id, content_sha256) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8) "
                "ON CONFLICT (merchant_id, business, settlement_id) DO NOTHING RETURNING settlement_id",
                business.merchant_id,
                business.code,
                report.settlement_id,
                digest,
                report.period_start,
                report.period_end,
                report_id,
                content,
            )
        except asyncpg.UniqueViolationError:  # the same rows under another SettlementId, imported concurrently
            raise _duplicate(report.settlement_id, None) from None
        if stored is None:  # imported before (the insert waited for that transaction to commit)
            return await _replay(conn, business, report.settlement_id, digest, content), False
        out = await _Reconciliation(ctx, conn, business, report).run()
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
    row = present(row, "the settlement whose insert conflicted exists (settlements are never deleted)")
    if bytes(row["file_sha256"]) != digest and bytes(row["content_sha256"] or b"") != content:
        raise Conflict(
            "settlement_conflict",
            f"settlement {settlement_id} was imported before from another file; a settlement is imported once",
        )
    return msgspec.convert(row["summary"], SettlementOut, strict=False)


class _Reconciliation:
    def __init__(self, ctx: Kontor, conn: Connection, business: Business, report: Report) -> None:
        self.ctx, self.conn, self.business, self.report = ctx, conn, business, report
        self.sid = report.settlement_id
        self.on = report.period_end.date() if report.period_end else max(r.posted_on for r in report.rows)
        self.outcome: dict[int, str] = {}
        self.entries: list[int] = []
        self.exceptions: list[ExceptionDraft] = []
        self.fees_parked: set[int] = set()  # lines whose fee is parked with them, not booked

    def _key(self) -> tuple[int, int, str]:
        return self.business.merchant_id, self.business.code, self.sid

    async def run(self) -> SettlementOut:
        conn, (merchant, code, sid) = self.conn, self._key()
        matched = await self._match_booked()
        await self._classify([r for r in self.report.rows if r.line_no not in matched])
        await self._book_fees()
        ids = await park(
            self.ctx, conn, self.business, source="settlement", source_ref=sid, drafts=self.exceptions, on=self.on
        )
        outcome = dict.fromkeys(matched, "matched") | self.outcome
        await conn.copy_records_to_table(
            "settlement_rows",
            columns=ROW_COLUMNS,
            records=[
                (
                    merchant,
                    code,
                    sid,
                    r.line_no,
                    r.type,
                    r.transaction_id,
                    r.seller_reference_id,
                    r.order_reference_id,
                    r.description,
                    r.amount,
                    r.fee,
                    r.posted_on,
                    outcome[r.line_no],
                )
                for r in self.report.rows
            ],
        )
        return self._summary(len(matched), ids)

    async def _match_booked(self) -> set[int]:
        """Captures and refunds booked before, same amount, not settled yet: matched in one statement each.

        The rows go in as arrays: the planner then walks them and finds each charge by its primary key,
        whatever the statistics say (a 100,000-row report is two statements, not 100,000 round trips).
        """
        merchant, code, sid = self._key()
        matched: set[int] = set()
        for kind, table, id_column, amount_column, sign in (
            ("Capture", "amazon_charges", "charge_id", "captured_minor", 1),
            ("Refund", "amazon_refunds", "refund_id", "amount_minor", -1),
        ):
            rows = [r for r in self.report.rows if r.type == kind and r.transaction_id]
            if not rows:
                continue
            done = await self.conn.fetch(
                f"UPDATE {table} t SET settlement_id = $3 "  # table and column are constants
                "FROM unnest($4::text[], $5::bigint[], $6::int[]) AS r(transaction_id, amount_minor, line_no) "
                f"WHERE t.merchant_id = $1 AND t.{id_column} = r.transaction_id AND t.business = $2 "
                f"AND t.settlement_id IS NULL AND t.entry_id IS NOT NULL AND t.{amount_column} = r.amount_minor "
                "RETURNING r.line_no",
                merchant,
                code,
                sid,
                [r.transaction_id for r in rows],
                [sign * r.amount for r in rows],
                [r.line_no for r in rows],
            )
            matched |= {d["line_no"] for d in done}
        return matched

    def _exception(self, row: Row, kind: str, description: str, amount: int) -> None:
        self.outcome[row.line_no] = "exception"
        self.exceptions.append(ExceptionDraft(row.line_no, kind, description, amount))

    def _already_settled(self, row: Row, description: str) -> None:
        """A row another settlement booked already (the same transaction, or the same payout): its net amount is
        parked, its fee is not booked again."""
        self.fees_parked.add(row.line_no)
        self._exception(row, "already_settled", description, row.amount + row.fee)

    async def _classify(self, rows: list[Row]) -> None:
        handlers = {
            "Capture": self._capture,
            "Refund": self._refund,
            "Transfer": self._transfer,
            "Reserve": self._reserve,
            "Authorization": self._fee_only,
        }
        for row in rows:
            if row.amount == 0 and row.fee == 0:
                self.outcome[row.line_no] = "empty"
            elif row.type in CHARGEBACK_TYPES:
                await self._chargeback(row)
            elif row.type in handlers:
                await handlers[row.type](row)
            else:
                self._exception(
                    row, "unclassified", f"{row.type} row: no booking rule; classify it ({row.description})", row.amount
                )

    async def _fee_only(self, row: Row) -> None:
        self.outcome[row.line_no] = "fee"  # authorization fees: the amount is a fee too, booked with the fees

    async def _locked(self, table: str, key_column: str, key: str, columns: str) -> Any:
        """A charge's or refund's row, locked after its order's (payments.store.lock_order: one lock order)."""
        merchant, code, _ = self._key()
        where = f"FROM {table} WHERE merchant_id = $1 AND business = $2 AND {key_column} = $3"  # constants only
        order_ref = await self.conn.fetchval(f"SELECT order_ref {where}", merchant, code, key)
        if order_ref is None:
            return None
        await lock_order(self.conn, self.business, order_ref)
        return await self.conn.fetchrow(f"SELECT {columns} {where} FOR UPDATE", merchant, code, key)

    async def _capture(self, row: Row) -> None:
        merchant, _code, sid = self._key()
        mirror = await self._locked(
            "amazon_charges",
            "charge_id",
            row.transaction_id,
            "order_ref, charge_permission_id, amount_minor, captured_minor, state, entry_id, settlement_id",
        )
        if mirror is None or mirror["state"] in ("Declined", "Canceled"):
            why = "is not in the ledger" if mirror is None else f"is {mirror['state']} in the ledger"
            self._exception(row, "unknown_capture", f"capture {row.transaction_id} {why}", row.amount)
            return
        if mirror["settlement_id"] is not None:
            self._already_settled(
                row,
                f"capture {row.transaction_id} was settled before, in {mirror['settlement_id']}",
            )
            return
        booked_now = mirror["entry_id"] is None
        if booked_now:  # captured at Amazon (the row proves it); no IPN booked it yet
            order = await load_order(self.conn, self.business, mirror["order_ref"])
            currency = self.business.currency
            charge = Charge(
                charge_id=row.transaction_id,
                charge_permission_id=mirror["charge_permission_id"],
                state="Captured",
                reason_code=None,
                charge_amount=Amount(mirror["amount_minor"], currency),
                capture_amount=Amount(row.amount if row.amount > 0 else mirror["amount_minor"], currency),
                refunded_amount=None,
                expires_at=None,
                created_at=None,
            )
            await record_charge(self.ctx, self.conn, self.business, order, charge, on=row.posted_on)
        await self.conn.execute(
            "UPDATE amazon_charges SET settlement_id = $3 WHERE merchant_id = $1 AND charge_id = $2",
            merchant,
            row.transaction_id,
            sid,
        )
        captured = await self.conn.fetchval(
            "SELECT captured_minor FROM amazon_charges WHERE merchant_id = $1 AND charge_id = $2",
            merchant,
            row.transaction_id,
        )
        self._compare(row, "capture", int(captured), "booked" if booked_now else "matched")

    def _compare(self, row: Row, what: str, ledger_amount: int, outcome: str) -> None:
        if row.amount == ledger_amount:
            self.outcome[row.line_no] = outcome
        else:
            self._exception(
                row,
                "amount_mismatch",
                f"{what} {row.transaction_id}: the report says {format_amount(row.amount, self.business.currency)}, "
                f"the ledger {format_amount(ledger_amount, self.business.currency)}",
                row.amount - ledger_amount,
            )

    async def _refund(self, row: Row) -> None:
        merchant, _code, sid = self._key()
        columns = "reference_id, refund_id, charge_id, amount_minor, state, entry_id, settlement_id"
        mirror = await self._locked("amazon_refunds", "refund_id", row.transaction_id, columns)
        if mirror is None and row.seller_reference_id:
            mirror = await self._locked("amazon_refunds", "reference_id", row.seller_reference_id, columns)
        if mirror is None or mirror["state"] == "Declined":
            self._exception(
                row,
                "unknown_refund",
                f"refund {row.transaction_id} is not in the ledger"
                + (" (Kontor saw it declined)" if mirror is not None else ""),
                row.amount,
            )
            return
        if mirror["settlement_id"] is not None:
            self._already_settled(
                row,
                f"refund {row.transaction_id} was settled before, in {mirror['settlement_id']}",
            )
            return
        if mirror["entry_id"] is None:  # refunded at Amazon; no IPN booked it yet
            refund = Refund(
                refund_id=row.transaction_id,
                charge_id=mirror["charge_id"],
                state="Refunded",
                reason_code=None,
                refund_amount=Amount(mirror["amount_minor"], self.business.currency),
                created_at=None,
            )
            await record_refund(
                self.ctx, self.conn, self.business, refund, on=row.posted_on, reference_id=mirror["reference_id"]
            )
        await self.conn.execute(
            "UPDATE amazon_refunds SET settlement_id = $3 WHERE merchant_id = $1 AND reference_id = $2",
            merchant,
            mirror["reference_id"],
            sid,
        )
        self._compare(row, "refund", -mirror["amount_minor"], "booked" if mirror["entry_id"] is None else "matched")

    async def _chargeback(self, row: Row) -> None:
        merchant, code, sid = self._key()
        known = await self.conn.fetchrow(
            "SELECT amount_minor, settlement_id, reversal_settlement_id FROM chargebacks "
            "WHERE merchant_id = $1 AND business = $2 AND chargeback_id = $3 FOR UPDATE",
            merchant,
            code,
            row.transaction_id,
        )
        if row.amount > 0:
            await self._chargeback_reversal(row, known)
            return
        if known is not None:
            if known["settlement_id"] is not None:
                self._already_settled(
                    row,
                    f"chargeback {row.transaction_id} was settled before, in {known['settlement_id']}",
                )
                return
            await self.conn.execute(
                "UPDATE chargebacks SET settlement_id = $3 WHERE merchant_id = $1 AND chargeback_id = $2",
                merchant,
                row.transaction_id,
                sid,
            )
            self._compare(row, "chargeback", -known["amount_minor"], "matched")
            return
        order_known = await self.conn.fetchval(
            "SELECT true FROM orders WHERE merchant_id = $1 AND business = $2 AND charge_permission_id = $3",
            merchant,
            code,
            row.order_reference_id,
        )
        if not order_known:
            self._exception(
                row,
                "unknown_order",
                f"{row.type} {row.transaction_id} for Amazon order {row.order_reference_id!r}, which no order has",
                row.amount,
            )
            return
        await record_chargeback(
            self.ctx,
            self.conn,
            self.business,
            chargeback_id=row.transaction_id,
            charge_permission_id=row.order_reference_id,
            charge_id=None,
            amount=-row.amount,
            reason=row.description or None,
            on=row.posted_on,
            kind=CHARGEBACK_TYPES[row.type],
            settlement_id=sid,
        )
        self.outcome[row.line_no] = "booked"

    async def _chargeback_reversal(self, row: Row, known: Any) -> None:
        """A positive chargeback row: Amazon paid it back, the representment was won."""
        if known is None or known["reversal_settlement_id"] is not None:
            why = (
                "is not in the ledger"
                if known is None
                else f"was paid back before, in {known['reversal_settlement_id']}"
            )
            self._exception(row, "unknown_reversal", f"chargeback {row.transaction_id} {why}", row.amount)
            return
        dispute = await open_dispute_of(self.conn, self.business, row.transaction_id)
        dispute = present(dispute, "every chargeback opens a dispute")
        if dispute["state"] == "lost":
            self._exception(
                row,
                "reversal_of_lost_dispute",
                f"chargeback {row.transaction_id} paid back, but dispute {dispute['dispute_id']} was recorded lost",
                row.amount,
            )
            return
        await self.conn.execute(
            "UPDATE chargebacks SET reversal_settlement_id = $3 WHERE merchant_id = $1 AND chargeback_id = $2",
            self.business.merchant_id,
            row.transaction_id,
            self.sid,
        )
        if dispute["state"] == "open":
            await close_dispute(self.ctx, self.conn, self.business, dispute, "won", row.posted_on)
            self._compare(row, "chargeback reversal", known["amount_minor"], "booked")
        else:
            self._compare(row, "chargeback reversal", known["amount_minor"], "matched")

    async def _transfer(self, row: Row) -> None:
        """A payout (negative row: Dr TRANSIT / Cr PSP), or a balance repayment Amazon collects from the bank
        (positive: Dr PSP / Cr TRANSIT); the bank statement clears either."""
        if await self._booked_elsewhere(row):
            return
        roles = await accounts_by_role(self.ctx, self.business)
        transit, psp = roles("TRANSIT"), roles("PSP")
        paid_out = row.amount < 0
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(
                transit if paid_out else psp, psp if paid_out else transit, abs(row.amount), self.business.currency
            ),
            on=row.posted_on,
            description=f"Amazon Pay {'payout' if paid_out else 'balance repayment'}, settlement {self.sid}",
            reference=self.sid,
            metadata={"settlement_id": self.sid},
        )
        await self.conn.execute(
            "INSERT INTO payouts (merchant_id, business, settlement_id, line_no, amount_minor, posted_on, entry_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *self._key(),
            row.line_no,
            -row.amount,
            row.posted_on,
            entry_id,
        )
        self.entries.append(entry_id)
        self.outcome[row.line_no] = "payout"

    async def _booked_elsewhere(self, row: Row) -> bool:
        """A Transfer or Reserve row has no transaction id: the same row (type, day, amount, Amazon's text) booked
        with another settlement is the same money; it becomes an `already_settled` exception."""
        earlier = await self.conn.fetchval(
            "SELECT settlement_id FROM settlement_rows WHERE merchant_id = $1 AND business = $2 "
            "AND transaction_type = $3 AND posted_on = $4 AND amount_minor = $5 AND description = $6 "
            "AND settlement_id <> $7 AND outcome IN ('payout', 'reserve') LIMIT 1",
            self.business.merchant_id,
            self.business.code,
            row.type,
            row.posted_on,
            row.amount,
            row.description,
            self.sid,
        )
        if earlier is not None:
            self._already_settled(
                row,
                f"{row.type} row of {format_amount(row.amount, self.business.currency)} on {row.posted_on} "
                f"({row.description}) was booked before, in settlement {earlier}",
            )
        return earlier is not None

    async def _reserve(self, row: Row) -> None:
        if await self._booked_elsewhere(row):
            return
        roles = await accounts_by_role(self.ctx, self.business)
        held = row.amount < 0
        psp, reserve = roles("PSP"), roles("PSP_RESERVE")
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            transfer_lines(reserve if held else psp, psp if held else reserve, abs(row.amount), self.business.currency),
            on=row.posted_on,
            description=f"Amazon Pay reserve {'held' if held else 'released'}, settlement {self.sid}",
            reference=self.sid,
            metadata={"settlement_id": self.sid},
        )
        self.entries.append(entry_id)
        self.outcome[row.line_no] = "reserve"

    async def _book_fees(self) -> None:
        """One entry for the settlement's fees (all rows) and authorization fee rows; detail stays in the rows."""
        total = sum(
            r.fee + (r.amount if r.type == "Authorization" else 0)
            for r in self.report.rows
            if r.line_no not in self.fees_parked
        )
        if not total:
            return
        roles = await accounts_by_role(self.ctx, self.business)
        psp, fees = roles("PSP"), roles("PSP_FEE")
        lines = (
            transfer_lines(fees, psp, -total, self.business.currency)
            if total < 0
            else (
                LineDraft(psp, Side.DEBIT, total, self.business.currency),
                LineDraft(fees, Side.CREDIT, total, self.business.currency),
            )
        )
        self.entries.append(
            await book(
                self.ctx,
                self.conn,
                self.business,
                lines,
                on=self.on,
                description=f"Amazon Pay fees, settlement {self.sid}",
                reference=self.sid,
                metadata={"settlement_id": self.sid},
            )
        )

    def _summary(self, matched: int, exception_ids: list[int]) -> SettlementOut:
        currency = self.business.currency
        totals: Counter[str] = Counter()
        for r in self.report.rows:
            totals[r.type] += r.amount
            totals["fees"] += r.fee
        outcomes = Counter(self.outcome.values())
        if matched:
            outcomes["matched"] += matched
        return SettlementOut(
            settlement_id=self.sid,
            seller_id=self.report.seller_id,
            currency=currency,
            period_start=self.report.period_start,
            period_end=self.report.period_end,
            rows=len(self.report.rows),
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
