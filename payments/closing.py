"""Period-end postings of the payments module, booked when a month is closed (docs/accounting.md, "VAT").

VAT on prepayments (§13 (1) no. 1a sentence 4 UStG): money received before the supply makes the VAT due in
the month it was received. For every month being closed: the gross of one-step orders' items that were
captured by the month's end but neither invoiced nor cancelled by then, per VAT rate; the tax in it is booked
Dr VAT_PREPAY / Cr VAT_r on the month's last day and reversed on the first day of the next month (the invoice
then books the VAT as usual).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.books import accounts_by_role, book
from ledger.context import Kontor
from ledger.domain import Business, LineDraft, Side, month_end
from ledger.money import vat_from_gross

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["book_prepayment_vat", "prepaid_by_rate"]


async def prepaid_by_rate(conn: Connection, business: Business, last: date) -> dict[Decimal, int]:
    """Gross captured at `last` for items not invoiced and not cancelled by then, per VAT rate."""
    rows = await conn.fetch(
        "SELECT i.vat_rate, sum(i.gross_unit_minor * i.quantity)::bigint AS gross "
        "FROM order_items i JOIN orders o USING (merchant_id, business, order_ref) "
        "WHERE i.merchant_id = $1 AND i.business = $2 AND o.payment_execution = 'one_step' "
        "AND EXISTS (SELECT 1 FROM amazon_charges c JOIN entries e ON e.merchant_id = c.merchant_id "
        "  AND e.business = c.business AND e.entry_id = c.entry_id "
        "  WHERE c.merchant_id = i.merchant_id AND c.business = i.business AND c.order_ref = i.order_ref "
        "  AND e.effective_date <= $3) "
        "AND NOT EXISTS (SELECT 1 FROM order_documents d WHERE d.merchant_id = i.merchant_id "
        "  AND d.business = i.business AND d.kind = 'invoice' AND d.ref = i.invoice_ref AND d.document_date <= $3) "
        "AND NOT EXISTS (SELECT 1 FROM order_documents d WHERE d.merchant_id = i.merchant_id "
        "  AND d.business = i.business AND d.order_ref = i.order_ref AND d.kind = 'cancellation' "
        "  AND d.document_date <= $3 AND d.details -> 'items' @> to_jsonb(i.item_ref)) "
        "GROUP BY i.vat_rate ORDER BY i.vat_rate DESC",
        business.merchant_id,
        business.code,
        last,
    )
    return {r["vat_rate"]: r["gross"] for r in rows if r["gross"]}


async def book_prepayment_vat(ctx: Kontor, conn: Connection, business: Business, months: list[date]) -> None:
    roles = await accounts_by_role(ctx, business)
    for first in months:
        last = month_end(first)
        taxes = {
            rate: vat_from_gross(gross, rate) for rate, gross in (await prepaid_by_rate(conn, business, last)).items()
        }
        taxes = {rate: tax for rate, tax in taxes.items() if tax}
        if not taxes:
            continue
        period = f"{first:%Y-%m}"
        total = sum(taxes.values())
        due = [LineDraft(roles("VAT_PREPAY"), Side.DEBIT, total, business.currency)]
        due += [
            LineDraft(roles.per_rate("VAT", rate), Side.CREDIT, tax, business.currency) for rate, tax in taxes.items()
        ]
        back = [LineDraft(line.account, Side.CREDIT if line.side is Side.DEBIT else Side.DEBIT, line.amount_minor,
                          line.currency) for line in due]  # fmt: skip
        meta = {"period_end": "vat_on_prepayments", "period": period}
        await book(ctx, conn, business, due, on=last, description=f"VAT on prepayments received, {period}",
                   reference=f"vat-prepay-{period}", metadata=meta)  # fmt: skip
        await book(ctx, conn, business, back, on=last + timedelta(days=1),
                   description=f"VAT on prepayments received, {period}: reversed",
                   reference=f"vat-prepay-{period}-reversal", metadata=meta)  # fmt: skip
