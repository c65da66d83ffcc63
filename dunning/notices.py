"""Dunning notices: the document a customer receives, rendered as HTML from the stored notice.

The notice's content (level, items, amounts, pay-by date) is stored when it is issued and never
changes; the HTML is rendered from it on request, so the document is the same whenever it is fetched.
Every value is escaped.
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Any

from msgspec import Struct

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import NotFound
from payments.references import creditor_reference

__all__ = ["NoticeOut", "get_notice", "list_notices", "notice_urls", "render_html"]

TITLES = {1: "Payment reminder", 2: "First dunning notice", 3: "Second dunning notice", 4: "Final dunning notice"}


class NoticeOut(Struct, kw_only=True):
    notice_id: int
    customer: str
    level: int
    title: str
    issued_on: date
    pay_by: date
    content: dict[str, Any]
    entry_id: int | None
    document_url: str
    letter_pdf_url: str = ""  # the letter for the window envelope (needs the business profile)
    letter_html_url: str = ""
    payment_reference: str = ""  # ISO 11649, printed on the letter; a bank transfer naming it pays the customer


def notice_urls(business: Business, notice_id: int) -> tuple[str, str, str]:
    """The API paths of a notice's document, its letter as PDF and as HTML (`dunning.http`)."""
    base = f"/v1/businesses/{business.code}/dunning/notices/{notice_id}"
    return f"{base}/document", f"{base}/letter.pdf", f"{base}/letter.html"


def _out(business: Business, row: Any) -> NoticeOut:
    document, letter_pdf, letter_html = notice_urls(business, row["notice_id"])
    return NoticeOut(
        notice_id=row["notice_id"],
        customer=row["customer"],
        level=row["level"],
        title=TITLES[row["level"]],
        issued_on=row["issued_on"],
        pay_by=row["pay_by"],
        content=row["content"],
        entry_id=row["entry_id"],
        document_url=document,
        letter_pdf_url=letter_pdf,
        letter_html_url=letter_html,
        payment_reference=creditor_reference("dunning_notice", row["notice_id"]),
    )


async def get_notice(ctx: Kontor, business: Business, notice_id: int) -> NoticeOut:
    row = await ctx.pool.fetchrow(
        "SELECT * FROM dunning_notices WHERE merchant_id = $1 AND business = $2 AND notice_id = $3",
        business.merchant_id,
        business.code,
        notice_id,
    )
    if row is None:
        raise NotFound("notice_not_found", f"dunning notice {notice_id} not found")
    return _out(business, row)


async def list_notices(
    ctx: Kontor, business: Business, *, customer: str | None, after: int, limit: int
) -> list[NoticeOut]:
    rows = await ctx.pool.fetch(
        "SELECT * FROM dunning_notices WHERE merchant_id = $1 AND business = $2 AND ($3::text IS NULL OR customer = $3) "
        "AND notice_id > $4 ORDER BY notice_id LIMIT $5",
        business.merchant_id,
        business.code,
        customer,
        after,
        limit,
    )
    return [_out(business, r) for r in rows]


def render_html(notice: NoticeOut, merchant_name: str) -> str:
    c = notice.content
    e = escape
    rows = "".join(
        f"<tr><td>{e(str(i['order_reference'] or '-'))}</td><td>{e(i['due_date'])}</td>"
        f"<td class=num>{e(i['amount'])} {e(c['currency'])}</td></tr>"
        for i in c["items"]
    )
    charges = "".join(
        f"<tr><td colspan=2>{label}</td><td class=num>{e(c[key])} {e(c['currency'])}</td></tr>"
        for label, key in (("Dunning fees (no VAT)", "costs"), ("Default interest (no VAT)", "interest"))
        if c[key] not in ("0.00", "0", "0.000")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(notice.title)} {notice.notice_id}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}td,th{{padding:.2em .6em}}.num{{text-align:right}}
table{{border-collapse:collapse}}tfoot td{{border-top:1px solid #000;font-weight:bold}}</style></head>
<body>
<p>{e(merchant_name)}</p>
<h1>{e(notice.title)}</h1>
<p>Customer {e(notice.customer)} &middot; notice {notice.notice_id} &middot; {e(c["issued_on"])}</p>
<p>The following items are overdue. Please pay <strong>{e(c["total"])} {e(c["currency"])}</strong>
by <strong>{e(c["pay_by"])}</strong>.</p>
<table><thead><tr><th>Order</th><th>Due since</th><th class=num>Open</th></tr></thead>
<tbody>{rows}{charges}</tbody>
<tfoot><tr><td colspan=2>Total</td><td class=num>{e(c["total"])} {e(c["currency"])}</td></tr></tfoot></table>
</body></html>
"""
