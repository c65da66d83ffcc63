"""Disputes, dunning notices (with their document and PDF letter) and the dunning overview (policy and runs)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from desk.sheets import Cell, Sheet
from desk.web.common import (
    After,
    page_url,
    path_id,
)
from desk.webkit import HEADERS, PAGE, View, open_page
from dunning import letters
from dunning import notices as dunning_notices
from dunning.policy import get_policy
from dunning.runlog import list_runs
from ledger.http.deps import BusinessCodePath as Code
from payments.disputes import list_disputes

__all__ = [
    "disputes_page",
    "dunning",
    "letter_url",
    "notice_document",
    "notice_letter",
    "notices_page",
    "notices_sheet",
]


# --- disputes and dunning ------------------------------------------------------------------------------
@get("/{code:int}/disputes")
async def disputes_page(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    found = await list_disputes(v.ctx, v.business, None)
    today = v.ctx.today()
    found.sort(key=lambda d: (d.state != "open", d.deadline, d.dispute_id))
    _ = v.lang._
    sheet = v.sheet(
        "disputes",
        "",
        [
            ("Dispute", "int"),
            ("Order", "text"),
            ("Customer", "text"),
            ("Amount", "amount"),
            ("Reason", "text"),
            ("Opened", "date"),
            ("Deadline", "date"),
            ("Days left", "int"),
            ("State", "text"),
            ("At Amazon", "text"),
        ],
        "No disputes.",
    )
    for d in found:
        left = (d.deadline - today).days if d.state == "open" else None
        attrs = (("class", "error"),) if left is not None and left <= 3 else ()
        sheet.add(
            d.dispute_id,
            Cell(d.order_reference, href=page_url(v, f"orders/{d.order_reference}")),
            Cell(d.customer, href=page_url(v, f"customers/{d.customer}")),
            d.amount,
            d.reason or "",
            d.opened_on,
            d.deadline,
            Cell(left, attrs=attrs),
            _(d.state),
            d.amazon_state or "",
            dispute=d.dispute_id,
        )
    return v.respond("disputes.html", "disputes", [sheet])


def letter_url(v: View, notice_id: int) -> str:
    return page_url(v, f"dunning/notices/{notice_id}/letter.pdf")


def notices_sheet(v: View, found: list[dunning_notices.NoticeOut]) -> Sheet:
    _ = v.lang._
    sheet = v.sheet(
        "notices",
        "Dunning notices",
        [
            ("Notice", "int"),
            ("Customer", "text"),
            ("Level", "int"),
            ("Title", "text"),
            ("Issued", "date"),
            ("Pay by", "date"),
            ("Total", "amount"),
            ("Letter", "text"),
        ],
        "No notices.",
    )
    for n in found:
        sheet.add(
            n.notice_id,
            Cell(n.customer, href=page_url(v, f"customers/{n.customer}")),
            n.level,
            _(n.title),
            n.issued_on,
            n.pay_by,
            n.content.get("total"),
            Cell(_("Letter (PDF)"), href=letter_url(v, n.notice_id)),
            notice=n.notice_id,
        )
    return sheet


@get("/{code:int}/dunning/notices")
async def notices_page(request: Request[Any, Any, Any], code: Code, after: After = 0) -> Response[Any]:
    v = await open_page(request, code)
    found = await dunning_notices.list_notices(
        v.ctx, v.business, customer=None, after=max(after, 0), limit=5000 if v.downloading else PAGE + 1
    )
    more = not v.downloading and len(found) > PAGE
    found = found[:PAGE] if more else found
    return v.respond(
        "notices.html", "notices", [notices_sheet(v, found)], next_after=found[-1].notice_id if more else None
    )


@get("/{code:int}/dunning/notices/{notice:str}/document")
async def notice_document(request: Request[Any, Any, Any], code: Code, notice: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    notice_id = path_id(notice, "notice_not_found", "notice")
    found = await dunning_notices.get_notice(v.ctx, v.business, notice_id)
    name = await v.ctx.pool.fetchval("SELECT name FROM merchants WHERE merchant_id = $1", v.business.merchant_id)
    return Response(dunning_notices.render_html(found, str(name)), media_type="text/html", headers=HEADERS)


@get("/{code:int}/dunning/notices/{notice:str}/letter.pdf")
async def notice_letter(request: Request[Any, Any, Any], code: Code, notice: FromPath[str]) -> Response[Any]:
    """The notice's letter as PDF (DIN 5008, `dunning.letters`); 409 `profile_missing` until the business
    profile is set; 404 for an id that is not one (`path_id`)."""
    v = await open_page(request, code)
    notice_id = path_id(notice, "notice_not_found", "notice")
    letter = await letters.notice_letter(v.ctx, v.business, notice_id)
    body = await asyncio.to_thread(letters.render_pdf, letter)  # CPU work off the event loop
    name = f"{'mahnung' if letter.language == 'de' else 'dunning-notice'}-{notice_id}.pdf"
    headers = {**HEADERS, "Content-Disposition": f'inline; filename="{name}"'}
    return Response(body, media_type="application/pdf", headers=headers)


@get("/{code:int}/dunning")
async def dunning(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    policy = await get_policy(v.ctx, v.business)
    runs = await list_runs(v.ctx, v.business, before=None, limit=10)
    accounts = await v.ctx.reports_pool.fetch(
        "SELECT customer, level, last_notice_on, default_on, collection_status, "
        "CASE WHEN paused_until >= $3 THEN paused_until END AS paused_until FROM dunning_accounts "
        "WHERE merchant_id = $1 AND business = $2 AND (level > 0 OR collection_status IS NOT NULL "
        "OR paused_until >= $3) ORDER BY level DESC, customer LIMIT 500",
        v.business.merchant_id,
        v.business.code,
        v.ctx.today(),
    )
    _ = v.lang._
    levels = v.sheet(
        "levels",
        "Levels",
        [("Level", "int"), ("Sent", "text"), ("Payment term (days)", "int"), ("Fee", "amount")],
    )
    for lv in policy.levels:  # level 1 counts from the due date, every later one from the notice before it
        when = (
            _n(v, "{n} day after the due date", "{n} days after the due date", lv.days)
            if lv.level == 1
            else _n(v, "{n} day after the previous notice", "{n} days after the previous notice", lv.days)
        )
        levels.add(lv.level, when, lv.payment_term_days, lv.fee, days=lv.days)
    in_dunning = v.sheet(
        "in-dunning",
        "Customers in dunning",
        [
            ("Customer", "text"),
            ("Level", "int"),
            ("Last notice", "date"),
            ("In default since", "date"),
            ("Paused until", "date"),
            ("Collection", "text"),
        ],
        "No customer is in dunning.",
    )
    for a in accounts:
        in_dunning.add(
            Cell(a["customer"], href=page_url(v, f"customers/{a['customer']}")),
            Cell(a["level"], attrs=(("class", "level"),)),
            a["last_notice_on"],
            a["default_on"],
            a["paused_until"],
            a["collection_status"] or "",
            customer=a["customer"],
        )
    runs_sheet = v.sheet(
        "runs",
        "Latest runs",
        [("Run", "int"), ("As of", "date"), ("Trigger", "text"), ("State", "text"), ("Counts", "text")],
        "No run yet.",
    )
    for run in runs:
        counts = "; ".join(_run_count(v, k, n) for k, n in sorted(run.counts.items()) if n)
        runs_sheet.add(run.run_id, run.as_of, _(run.trigger), _(run.state), counts, run=run.run_id)
    return v.respond("dunning.html", "dunning", [levels, in_dunning, runs_sheet], policy=policy)


def _n(v: View, singular: str, plural: str, n: int) -> str:
    return v.lang.n_(singular, plural, n).format(n=n)


# what a dunning run counted (`dunning.runs`), per key, in words
RUN_COUNTS = {
    "customers": ("{n} customer looked at", "{n} customers looked at"),
    "notice": ("{n} notice issued", "{n} notices issued"),
    "none": ("{n} customer with nothing to do", "{n} customers with nothing to do"),
    "reset": ("{n} customer reset (paid)", "{n} customers reset (paid)"),
    "skip": ("{n} customer skipped", "{n} customers skipped"),
    "write_off": ("{n} claim written off", "{n} claims written off"),
    "collection": ("{n} customer ready for collection", "{n} customers ready for collection"),
}


def _run_count(v: View, key: str, n: int) -> str:
    if key in RUN_COUNTS:
        return _n(v, *RUN_COUNTS[key], n)
    return f"{v.lang._(key)}: {n}"
