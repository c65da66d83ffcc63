"""Amazon Pay settlements reconciled against the ledger, inside the import's one transaction (docs/amazon-pay.md §5).

Split from `payments.settlement` (the import: identity, replay, the transaction) and `payments.settlement_rules`
(what a row means, pure): this module is the part that reads and writes the database.
- Captures and refunds Kontor booked are matched set-based: one UPDATE ... FROM per kind, so a 100,000-row
  report is a handful of statements, not 100,000 round trips.
- Every other row is looked up by its transaction (locked after its order's: `payments.store.lock_order`) and
  booked when the row proves what the ledger lacks: a capture Amazon completed, a refund that completed, a
  chargeback or A-to-z claim (once, even when the IPN reported it too), a chargeback paid back (the dispute is
  then won); each Reserve row moves PSP <-> PSP_RESERVE, each Transfer row is a payout (or a balance repayment)
  between PSP and TRANSIT, and the fees of all rows are one entry Dr PSP_FEE / Cr PSP.
- The exceptions are parked in SUSPENSE (`payments.reconciliation.park`) and every row is stored (COPY) with its
  outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ledger.books import accounts_by_role, book
from ledger.context import Kontor
from ledger.domain import Business, LineDraft
from ledger.errors import present
from payments.amazon.client import Amount, Charge, Refund
from payments.bookings import record_charge, record_refund
from payments.dispute_outcomes import close_dispute
from payments.disputes import open_dispute_of, record_chargeback
from payments.reconciliation import park
from payments.settlement_parse import CHARGEBACK_TYPES, Report, Row
from payments.settlement_rules import (
    SettlementOut,
    Tally,
    booked_before,
    booking_text,
    capture_finding,
    fees_total,
    psp_lines,
    refund_finding,
    reversal_finding,
    reversal_of_lost,
    rule_of,
    settled_before,
    unclassified,
    unknown_order,
)
from payments.store import load_order, lock_order

if TYPE_CHECKING:
    from datetime import date

    from ledger.db import Connection

__all__ = ["reconcile"]

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


async def reconcile(ctx: Kontor, conn: Connection, business: Business, report: Report) -> SettlementOut:
    """Match, book, park and store the report's rows in the caller's transaction; returns the import's summary."""
    return await _Reconciliation(ctx, conn, business, report).run()


class _Reconciliation:
    def __init__(self, ctx: Kontor, conn: Connection, business: Business, report: Report) -> None:
        self.ctx, self.conn, self.business, self.report = ctx, conn, business, report
        self.sid = report.settlement_id
        self.on = report.period_end.date() if report.period_end else max(r.posted_on for r in report.rows)
        self.tally = Tally(business.currency)

    def _key(self) -> tuple[int, int, str]:
        return self.business.merchant_id, self.business.code, self.sid

    async def run(self) -> SettlementOut:
        conn, (merchant, code, sid) = self.conn, self._key()
        matched = await self._match_booked()
        await self._classify([r for r in self.report.rows if r.line_no not in matched])
        await self._book_fees()
        ids = await park(
            self.ctx, conn, self.business, source="settlement", source_ref=sid, drafts=self.tally.exceptions, on=self.on
        )
        outcome = dict.fromkeys(matched, "matched") | self.tally.outcome
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
        return self.tally.summary(self.report, len(matched), ids)

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

    async def _classify(self, rows: list[Row]) -> None:
        handlers = {
            "Capture": self._capture,
            "Refund": self._refund,
            "Transfer": self._transfer,
            "Reserve": self._reserve,
            "chargeback": self._chargeback,
        }
        for row in rows:
            rule = rule_of(row)
            if rule == "empty":
                self.tally.outcome[row.line_no] = "empty"
            elif rule == "Authorization":  # the amount is a fee too, booked with the fees
                self.tally.outcome[row.line_no] = "fee"
            elif rule == "unclassified":
                self.tally.exception(row, unclassified(row))
            else:
                await handlers[rule](row)

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
        state, settled_in = (None, None) if mirror is None else (mirror["state"], mirror["settlement_id"])
        finding = capture_finding(row, state, settled_in)
        if finding is not None:
            self.tally.exception(row, finding)
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
        captured = await self.conn.fetchval(
            "UPDATE amazon_charges SET settlement_id = $3 WHERE merchant_id = $1 AND charge_id = $2 "
            "RETURNING captured_minor",
            merchant,
            row.transaction_id,
            sid,
        )
        self.tally.compare(row, "capture", int(captured), "booked" if booked_now else "matched")

    async def _refund(self, row: Row) -> None:
        merchant, _code, sid = self._key()
        columns = "reference_id, refund_id, charge_id, amount_minor, state, entry_id, settlement_id"
        mirror = await self._locked("amazon_refunds", "refund_id", row.transaction_id, columns)
        if mirror is None and row.seller_reference_id:
            mirror = await self._locked("amazon_refunds", "reference_id", row.seller_reference_id, columns)
        state, settled_in = (None, None) if mirror is None else (mirror["state"], mirror["settlement_id"])
        finding = refund_finding(row, state, settled_in)
        if finding is not None:
            self.tally.exception(row, finding)
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
        outcome = "booked" if mirror["entry_id"] is None else "matched"
        self.tally.compare(row, "refund", -mirror["amount_minor"], outcome)

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
                self.tally.exception(row, settled_before(row, "chargeback", known["settlement_id"]))
                return
            await self._settle_chargeback(row, "settlement_id")
            self.tally.compare(row, "chargeback", -known["amount_minor"], "matched")
            return
        order_known = await self.conn.fetchval(
            "SELECT true FROM orders WHERE merchant_id = $1 AND business = $2 AND charge_permission_id = $3",
            merchant,
            code,
            row.order_reference_id,
        )
        if not order_known:
            self.tally.exception(row, unknown_order(row))
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
        self.tally.outcome[row.line_no] = "booked"

    async def _settle_chargeback(self, row: Row, column: str) -> None:
        """The chargeback's `settlement_id` (it was debited) or `reversal_settlement_id` (it was paid back)."""
        await self.conn.execute(
            f"UPDATE chargebacks SET {column} = $3 WHERE merchant_id = $1 AND chargeback_id = $2",  # a constant
            self.business.merchant_id,
            row.transaction_id,
            self.sid,
        )

    async def _chargeback_reversal(self, row: Row, known: Any) -> None:
        """A positive chargeback row: Amazon paid it back, the representment was won."""
        paid_back_in = None if known is None else known["reversal_settlement_id"]
        finding = reversal_finding(row, known is not None, paid_back_in)
        if finding is not None:
            self.tally.exception(row, finding)
            return
        dispute = await open_dispute_of(self.conn, self.business, row.transaction_id)
        dispute = present(dispute, "every chargeback opens a dispute")
        if dispute["state"] == "lost":
            self.tally.exception(row, reversal_of_lost(row, dispute["dispute_id"]))
            return
        await self._settle_chargeback(row, "reversal_settlement_id")
        if dispute["state"] == "open":
            await close_dispute(self.ctx, self.conn, self.business, dispute, "won", row.posted_on)
            self.tally.compare(row, "chargeback reversal", known["amount_minor"], "booked")
        else:
            self.tally.compare(row, "chargeback reversal", known["amount_minor"], "matched")

    async def _transfer(self, row: Row) -> None:
        """A payout (negative row: Dr TRANSIT / Cr PSP), or a balance repayment Amazon collects from the bank
        (positive: Dr PSP / Cr TRANSIT); the bank statement clears either."""
        if await self._booked_elsewhere(row):
            return
        roles = await accounts_by_role(self.ctx, self.business)
        lines = psp_lines(row.amount, roles("PSP"), roles("TRANSIT"), self.business.currency)
        entry_id = await self._book(lines, row.posted_on, booking_text(row.type, row.amount, self.sid))
        await self.conn.execute(
            "INSERT INTO payouts (merchant_id, business, settlement_id, line_no, amount_minor, posted_on, entry_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *self._key(),
            row.line_no,
            -row.amount,
            row.posted_on,
            entry_id,
        )
        self.tally.outcome[row.line_no] = "payout"

    async def _reserve(self, row: Row) -> None:
        """A reserve held (negative row: Dr PSP_RESERVE / Cr PSP) or released (positive: Dr PSP / Cr PSP_RESERVE)."""
        if await self._booked_elsewhere(row):
            return
        roles = await accounts_by_role(self.ctx, self.business)
        lines = psp_lines(row.amount, roles("PSP"), roles("PSP_RESERVE"), self.business.currency)
        await self._book(lines, row.posted_on, booking_text(row.type, row.amount, self.sid))
        self.tally.outcome[row.line_no] = "reserve"

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
            self.tally.exception(row, booked_before(row, self.business.currency, earlier))
        return earlier is not None

    async def _book_fees(self) -> None:
        """One entry for the settlement's fees (all rows) and authorization fee rows; detail stays in the rows."""
        total = fees_total(self.report.rows, self.tally.fees_parked)
        if not total:
            return
        roles = await accounts_by_role(self.ctx, self.business)
        lines = psp_lines(total, roles("PSP"), roles("PSP_FEE"), self.business.currency)
        await self._book(lines, self.on, booking_text("fees", total, self.sid))

    async def _book(self, lines: Sequence[LineDraft], on: date, description: str) -> int:
        """One entry of the settlement's own (payout, reserve, fees), referencing it; listed in its summary."""
        entry_id = await book(
            self.ctx,
            self.conn,
            self.business,
            lines,
            on=on,
            description=description,
            reference=self.sid,
            metadata={"settlement_id": self.sid},
        )
        self.tally.entries.append(entry_id)
        return entry_id
