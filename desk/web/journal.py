"""The journal pages: an account's register, the journal, one entry, and the two forms that change the
books (a correction entry and a reversal), each with a reason and the session's CSRF token.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from desk.sheets import Cell
from desk.web.common import (
    form_amount,
    form_date,
    form_reason,
    page_url,
    path_id,
    read_form,
    request_sha,
    say,
    signed_cell,
)
from desk.webkit import HEADERS, View, check_csrf, open_page
from ledger import entries, journal, posting, registers
from ledger.errors import BadRequest, Unprocessable
from ledger.http.deps import BusinessCodePath as Code
from ledger.http.deps import Cursor
from ledger.money import currency_decimals, format_amount, parse_amount
from ledger.schemas import EntryIn, EntryOut, LineIn, ReversalIn
from ledger.tenancy import account_index

__all__ = ["correction_form", "entry_page", "journal_page", "post_correction", "register", "reverse_entry"]


CORRECTION_LINES = 6


@get("/{code:int}/accounts/{number:str}/register")
async def register(
    request: Request[Any, Any, Any],
    code: Code,
    number: FromPath[str],
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    customer: FromQuery[str | None] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    page = await registers.register(
        v.ctx,
        v.business,
        number,
        from_date=from_date,
        to_date=to_date,
        customer=customer or None,
        currency=None,
        cursor=cursor or None,
        limit=v.rows,
    )
    _ = v.lang._
    sheet = v.sheet(
        "register",
        "",
        [
            ("Date", "date"),
            ("Entry", "int"),
            ("Description", "text"),
            ("Reference", "text"),
            ("Customer", "text"),
            ("Debit", "amount"),
            ("Credit", "amount"),
            ("Balance", "amount"),
        ],
        "No lines in this range.",
    )
    if cursor is None:
        sheet.add(
            None,
            None,
            _("Opening balance"),
            "",
            "",
            None,
            None,
            signed_cell(v, page.opening_balance, page.opening_side),
        )
    for r in page.rows:
        sheet.add(
            r.effective_date,
            Cell(r.entry_id, href=page_url(v, f"journal/{r.entry_id}")),
            r.description,
            r.reference or "",
            r.customer or "",
            Cell(r.debit, currency=page.currency),
            Cell(r.credit, currency=page.currency),
            signed_cell(v, r.balance, r.side),
            entry=r.entry_id,
            line=r.line_no,
        )
    keep = {"from": from_date, "to": to_date, "customer": customer or None}
    query = {k: str(x) for k, x in keep.items() if x is not None}
    return v.respond("register.html", "trial-balance", [sheet], page=page, filters=query, first=cursor is None)


# --- journal -------------------------------------------------------------------------------------------
def _posted_by(v: View, entry: EntryOut) -> str:
    """Who posted an entry: its API key's name and id ("" for Kontor itself: a scheduled job, an IPN)."""
    who = entry.posted_by
    return "" if who is None else f"{who.name} ({v.lang._('key')} {who.key_id})"


def _entry_total(entry: Any, currency: str) -> str:
    """The entry's debits in the business code's currency."""
    total = sum((Decimal(x.debit) for x in entry.lines if x.debit and x.currency == currency), Decimal(0))
    return format_amount(int(total.scaleb(currency_decimals(currency))), currency)


@get("/{code:int}/journal")
async def journal_page(
    request: Request[Any, Any, Any],
    code: Code,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    account: Annotated[str | None, QueryParameter(max_length=20)] = None,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    reference: Annotated[str | None, QueryParameter(max_length=200)] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    where = entries.EntryFilter(
        from_date=from_date,
        to_date=to_date,
        account=account or None,
        customer=customer or None,
        reference=reference or None,
        descending=True,
    )
    page = await entries.list_entries(v.ctx, v.business, where, cursor or None, v.rows)
    sheet = v.sheet(
        "journal",
        "",
        [
            ("Entry", "int"),
            ("Date", "date"),
            ("Description", "text"),
            ("Reference", "text"),
            ("Amount", "amount"),
            ("Posted by", "text"),
            ("Reverses entry", "int"),
            ("Reversed by", "int"),
        ],
        "No entries.",
    )
    cur = v.business.currency
    for e in page.items:
        sheet.add(
            Cell(e.id, href=page_url(v, f"journal/{e.id}")),
            e.effective_date,
            e.description,
            e.reference or "",
            _entry_total(e, cur),
            _posted_by(v, e),
            Cell(e.reverses, href=page_url(v, f"journal/{e.reverses}")) if e.reverses else None,
            Cell(e.reversed_by, href=page_url(v, f"journal/{e.reversed_by}")) if e.reversed_by else None,
            entry=e.id,
        )
    filters = {"from": from_date, "to": to_date, "account": account, "customer": customer, "reference": reference}
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond("journal.html", "journal", [sheet], page=page, filters=shown, first=cursor is None)


@get("/{code:int}/journal/{entry:str}")
async def entry_page(request: Request[Any, Any, Any], code: Code, entry: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    entry_id = path_id(entry, "entry_not_found", "entry")
    found = await entries.get_entry(v.ctx, v.business, entry_id)
    index = await account_index(v.ctx, v.business)
    sheet = v.sheet(
        "lines",
        "Lines",
        [
            ("No.", "int"),
            ("Account", "text"),
            ("Name", "text"),
            ("Customer", "text"),
            ("Debit", "amount"),
            ("Credit", "amount"),
            ("Currency", "text"),
        ],
    )
    for line in found.lines:
        account = index.by_number.get(line.account)
        sheet.add(
            line.line_no,
            Cell(line.account, href=page_url(v, f"accounts/{line.account}/register")),
            v.lang.account(account.name) if account else "",
            Cell(line.customer, href=page_url(v, f"customers/{line.customer}")) if line.customer else "",
            Cell(line.debit, currency=line.currency),
            Cell(line.credit, currency=line.currency),
            line.currency,
            line=line.line_no,
            account=line.account,
        )
    can_reverse = found.reversed_by is None and found.reverses is None
    return v.respond(
        "entry.html",
        "journal",
        [sheet],
        entry=found,
        posted_by=_posted_by(v, found),
        can_reverse=can_reverse,
        today=v.ctx.today(),
    )


@post("/{code:int}/journal/{entry:str}/reversal", status_code=303)
async def reverse_entry(request: Request[Any, Any, Any], code: Code, entry: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    form = await read_form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = form_reason(v, form)
    entry_id = path_id(entry, "entry_not_found", "entry")
    body = ReversalIn(
        effective_date=form_date(v, form, "effective_date", "Date of the reversal"),
        description=f"Reversal of entry {entry_id}: {reason}"[:500],
        reason=reason,
    )
    idem = f"web-reversal-{entry_id}"  # one reversal per entry: a second submit replays the first
    with v.acting():
        posted = await journal.reverse_entry(
            v.ctx, v.business, entry_id, body, idem_key=idem, request_sha256=request_sha(request, body)
        )
    return Redirect(page_url(v, f"journal/{posted.entries[0].id}"), status_code=303, headers=HEADERS)


@get("/{code:int}/journal/new")
async def correction_form(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    index = await account_index(v.ctx, v.business)
    accounts = sorted(index.by_number.values(), key=lambda a: a.number)
    return v.respond(
        "correction.html",
        "journal",
        [],
        accounts=accounts,
        lines=range(1, CORRECTION_LINES + 1),
        idem=str(uuid.uuid4()),
        today=v.ctx.today(),
    )


@post("/{code:int}/journal", status_code=303)
async def post_correction(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    form = await read_form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = form_reason(v, form)
    idem = form.get("idem", "")
    if not 8 <= len(idem) <= 64 or not idem.isascii():
        raise BadRequest("form_invalid", say(v, "Reload the form and send it again."))
    day = form_date(v, form, "effective_date", "Date")
    if day is None:
        raise Unprocessable("date_required", say(v, "The entry needs its date."))
    _ = v.lang._
    lines = []
    debits = credits = 0
    cur = v.business.currency
    for n in range(1, CORRECTION_LINES + 1):
        account, debit, credit = (form.get(f"{k}_{n}", "") for k in ("account", "debit", "credit"))
        if not (account or debit or credit):
            continue
        debit_amount = form_amount(v, debit, _("Line {n}, debit").format(n=n))
        credit_amount = form_amount(v, credit, _("Line {n}, credit").format(n=n))
        if not account:
            raise Unprocessable("account_required", say(v, "Line {n}: choose the account.", n=n))
        if (debit_amount is None) == (credit_amount is None):
            raise Unprocessable("amount_required", say(v, "Line {n}: give a debit or a credit amount, not both.",
                           n=n))  # fmt: skip
        debits += parse_amount(debit_amount, cur) if debit_amount else 0
        credits += parse_amount(credit_amount, cur) if credit_amount else 0
        lines.append(
            LineIn(
                account=account, debit=debit_amount, credit=credit_amount, customer=form.get(f"customer_{n}") or None
            )
        )
    if debits != credits:
        raise Unprocessable("entry_unbalanced", say(v, "Debits ({debits}) and credits ({credits}) differ: an "
                       "entry balances.", debits=v.fmt.amount(format_amount(debits, cur)),
                       credits=v.fmt.amount(format_amount(credits, cur))))  # fmt: skip
    try:
        body = msgspec.convert(
            {
                "effective_date": day.isoformat(),
                "description": form.get("description") or reason,
                "reference": form.get("reference") or None,
                "lines": [msgspec.to_builtins(x) for x in lines],
                "metadata": {"reason": reason, "posted_via": "web"},
            },
            EntryIn,
        )
    except msgspec.ValidationError as exc:
        raise Unprocessable("entry_invalid", f"the entry is not valid: {exc}") from None
    index = await account_index(v.ctx, v.business)
    draft = posting.draft_entry(body, v.business, index.by_number)
    with v.acting():
        posted = await journal.post_entries(
            v.ctx, v.business, [draft], idem_key=f"web-{idem}", request_sha256=request_sha(request, body)
        )
    return Redirect(page_url(v, f"journal/{posted.entries[0].id}"), status_code=303, headers=HEADERS)
