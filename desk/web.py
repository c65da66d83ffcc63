"""The accountant's web pages: server-rendered, script-free, signed in with an accountant (or admin) API key.

Every page reads through the same functions the API's handlers call, scoped by the session's merchant, so a
page shows exactly the API's figures; amounts and dates are written in the business code's locale, labels in
its language (`desk.i18n`). Every table downloads as CSV or XLSX (`desk.sheets`); charts are inline SVG
(`desk.charts`). The forms (resolve or dismiss a reconciliation exception, post a correction entry, reverse an
entry, close a month) each need a reason and the session's CSRF token (`desk.webkit`), and call the same
use cases as the API; amounts typed into them are read as the page's locale writes them
(`desk.webkit.parse_local_amount`). An id in a page's path is checked by the page (`_path_id`: 404 for one that
cannot exist); every error is an HTML page in the page's language (`desk.webkit.error_page`).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from msgspec import Struct

from desk import find
from desk.charts import bar_chart
from desk.sheets import Cell, Sheet
from desk.webkit import (
    COOKIE,
    HEADERS,
    PAGE,
    ROLES,
    SESSION_HOURS,
    AmountTextError,
    Formats,
    SignInRequired,
    View,
    before_page,
    check_csrf,
    cross_site,
    ctx_of,
    digest,
    error_page,
    locale_of,
    open_page,
    parse_local_amount,
    render,
    session_cookie,
    session_key,
    template_config,
    viewer_of,
)
from dunning import letters
from dunning import notices as dunning_notices
from dunning.accounts import customer_open_items
from dunning.policy import get_policy
from dunning.runlog import list_runs
from ledger import journal, posting, registers, reports
from ledger.books import accounts_by_role
from ledger.errors import BadRequest, KontorError, NotFound, Unauthorized, Unprocessable
from ledger.glexport import FILE_FORMATS, gl_file
from ledger.http.deps import ID_MAX, Cursor
from ledger.http.deps import BusinessCodePath as Code
from ledger.money import currency_decimals, format_amount, parse_amount
from ledger.schemas import BalanceSheetOut, EntryIn, EntryOut, LineIn, ReversalIn, TrialBalanceOut
from ledger.tenancy import account_index, authenticate, list_businesses
from ledger.textsafe import ascii_digits, parse_ascii_int
from payments.disputes import list_disputes
from payments.orders import get_order
from payments.reconciliation import Resolution, list_exceptions, resolve_exception
from payments.reports import list_settlements
from payments.settlement import get_settlement

__all__ = ["COOKIE", "SESSION_HOURS", "Formats", "locale_of", "router", "template_config"]

CORRECTION_LINES = 6
After = Annotated[int, QueryParameter(ge=0, le=ID_MAX)]  # keyset position: an id, or 0 for the first page
REASON_MAX = 300


# --- sign-in -------------------------------------------------------------------------------------------
class SignInForm(Struct, kw_only=True):
    key: str = ""
    next: str = ""


def _next_page(target: str) -> str:
    """Only a page of this site (no `//host`, no scheme): nothing else may be the target of the redirect."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


@get("/sign-in")
async def sign_in_form(next_page: Annotated[str, QueryParameter(name="next")] = "/ui/") -> Template:
    return render("sign_in.html", error=None, next=_next_page(next_page))


@post("/sign-in", status_code=303)
async def sign_in(request: Request[Any, Any, Any], data: URLEncodedBody[SignInForm]) -> Response[Any]:
    ctx = ctx_of(request)
    target = _next_page(data.next)
    if cross_site(request):  # login CSRF: the victim would be signed in to the attacker's books
        return render("sign_in.html", 403, error="Sign in on this site's own sign-in page.", next="/ui/")
    try:
        principal = await authenticate(ctx, data.key.strip())
    except Unauthorized:
        return render("sign_in.html", 401, error="This key is not valid.", next=target)
    if principal.merchant_id is None or principal.key_id is None or principal.role not in ROLES:
        return render("sign_in.html", 403, error="Sign in with an accountant or admin key.", next=target)
    token = f"{principal.merchant_id}.{secrets.token_urlsafe(32)}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO web_sessions (merchant_id, session_sha256, key_id, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
            principal.merchant_id,
            digest(token),
            principal.key_id,
            SESSION_HOURS,
        )
    cookie = session_cookie(request, token, SESSION_HOURS * 3600)
    return Redirect(target, status_code=303, cookies=[cookie], headers=HEADERS)


@post("/sign-out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    if cross_site(request):  # another site may not end the session either
        return render(
            "error.html", 403, http_status=403, title="Not allowed", message="Sign out on this site's own pages.",
            fields=[],
        )  # fmt: skip
    try:
        merchant_id, key = session_key(request.cookies.get(COOKIE))
    except SignInRequired:
        pass
    else:
        await ctx_of(request).pool.execute(
            "DELETE FROM web_sessions WHERE merchant_id = $1 AND session_sha256 = $2", merchant_id, key
        )
    return Redirect("/ui/sign-in", status_code=303, cookies=[session_cookie(request, "", 0)], headers=HEADERS)


@get("/")
async def businesses(request: Request[Any, Any, Any]) -> Template:
    viewer = await viewer_of(request)
    codes = await list_businesses(ctx_of(request), viewer.merchant_id)
    return render("businesses.html", businesses=codes, role=viewer.role)


# --- helpers -------------------------------------------------------------------------------------------
def _url(v: View, path: str) -> str:
    return f"/ui/{v.business.code}/{path}"


def _signed(v: View, value: str | None, side: str) -> Cell:
    """An absolute amount with its side: the signed value (debit +) downloads, "1.234,50 S" shows."""
    amount = value or "0"
    signed = f"-{amount}" if side == "CREDIT" and Decimal(amount) else amount
    shown = f"{v.fmt.amount(amount)} {v.lang.side(side)}".strip()
    return Cell(signed, display=shown, attrs=(("class", "balance"), ("data-side", side)))


def _money(v: View, minor: int) -> str:
    return format_amount(minor, v.business.currency)


def _say(v: View, text: str, **values: Any) -> str:
    """A page's error message in the page's language (`text` is the catalogue's English)."""
    return v.lang._(text).format(**values)


def _month(v: View, period: str) -> str:
    """Checked here, after the session, not by a path pattern: a visitor without a session learns nothing."""
    if len(period) != 7 or period[4] != "-" or not ascii_digits(period[:4] + period[5:]):
        raise Unprocessable("period_invalid", _say(v, "“{value}” is not a month: write YYYY-MM.",
                       value=period[:30]))  # fmt: skip
    return period


def _year(v: View, year: int | None) -> tuple[int, date, date]:
    y = year or v.ctx.today().year
    if not 1900 <= y <= 2999:
        raise BadRequest("query_parameter_invalid", _say(v, "Year: “{value}” is not a year from 1900 to 2999.",
                       value=y))  # fmt: skip
    return y, date(y, 1, 1), date(y, 12, 31)


# --- trial balance and registers -----------------------------------------------------------------------
@get("/{code:int}/trial-balance")
async def trial_balance(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    report = await reports.trial_balance(v.ctx, v.business, as_of=as_of or v.ctx.today())
    sheet = v.sheet(
        "trial-balance",
        "",
        [
            ("Account", "text"),
            ("Name", "text"),
            ("Alt. no.", "text"),
            ("Currency", "text"),
            ("Debit", "amount"),
            ("Credit", "amount"),
        ],
    )
    for r in report.rows:
        href = _url(v, f"accounts/{r.account}/register?to={report.as_of}")
        sheet.add(
            Cell(r.account, href=href),
            v.lang.account(r.name),
            r.alt_number or "",
            r.currency,
            Cell(r.debit, currency=r.currency),
            Cell(r.credit, currency=r.currency),
            account=r.account,
            currency=r.currency,
        )
    for t in report.totals:
        sheet.total(
            v.lang._("Total"),
            "",
            "",
            t.currency,
            Cell(t.debit, currency=t.currency),
            Cell(t.credit, currency=t.currency),
            total=t.currency,
        )
    return v.respond("trial_balance.html", "trial-balance", [sheet], report=report, notes=_balance_notes(v, report))


def _balance_notes(v: View, report: TrialBalanceOut) -> list[str]:
    """The verdict in the page's language: which side exceeds the other in which currency, by a positive amount."""
    notes = []
    for t in report.totals:
        debit, credit = (parse_amount(x, t.currency, allow_zero=True) for x in (t.debit, t.credit))
        if debit == credit:
            continue
        text = (
            v.lang._("OUT OF BALANCE: {currency} debits exceed credits by {amount}.")
            if debit > credit
            else v.lang._("OUT OF BALANCE: {currency} credits exceed debits by {amount}.")
        )
        amount = v.fmt.amount(format_amount(abs(debit - credit), t.currency), t.currency)
        notes.append(text.format(currency=t.currency, amount=amount))
    return notes or [v.lang._("Debits equal credits.")]


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
            None, None, _("Opening balance"), "", "", None, None, _signed(v, page.opening_balance, page.opening_side)
        )
    for r in page.rows:
        sheet.add(
            r.effective_date,
            Cell(r.entry_id, href=_url(v, f"journal/{r.entry_id}")),
            r.description,
            r.reference or "",
            r.customer or "",
            Cell(r.debit, currency=page.currency),
            Cell(r.credit, currency=page.currency),
            _signed(v, r.balance, r.side),
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
    where = journal.EntryFilter(
        from_date=from_date,
        to_date=to_date,
        account=account or None,
        customer=customer or None,
        reference=reference or None,
        descending=True,
    )
    page = await journal.list_entries(v.ctx, v.business, where, cursor or None, v.rows)
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
            Cell(e.id, href=_url(v, f"journal/{e.id}")),
            e.effective_date,
            e.description,
            e.reference or "",
            _entry_total(e, cur),
            _posted_by(v, e),
            Cell(e.reverses, href=_url(v, f"journal/{e.reverses}")) if e.reverses else None,
            Cell(e.reversed_by, href=_url(v, f"journal/{e.reversed_by}")) if e.reversed_by else None,
            entry=e.id,
        )
    filters = {"from": from_date, "to": to_date, "account": account, "customer": customer, "reference": reference}
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond("journal.html", "journal", [sheet], page=page, filters=shown, first=cursor is None)


def _path_id(text: str, code: str, what: str) -> int:
    """An id in a page's path: 1 to 2^63-1 ASCII digits, else 404 `code` (like an id that does not exist), never
    a value the database cannot take. Checked by the page, after its session, not by a path pattern (a visitor
    without a session learns nothing, and /journal/abc is a page error, not an unknown route)."""
    number = parse_ascii_int(text, length_max=19)
    if number is None or not 1 <= number <= ID_MAX:
        raise NotFound(code, f"{what} {text[:30]} not found")
    return number


@get("/{code:int}/journal/{entry:str}")
async def entry_page(request: Request[Any, Any, Any], code: Code, entry: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    entry_id = _path_id(entry, "entry_not_found", "entry")
    found = await journal.get_entry(v.ctx, v.business, entry_id)
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
            Cell(line.account, href=_url(v, f"accounts/{line.account}/register")),
            v.lang.account(account.name) if account else "",
            Cell(line.customer, href=_url(v, f"customers/{line.customer}")) if line.customer else "",
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


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.items():
        if isinstance(value, str):
            if len(value) > 2000:
                raise BadRequest("form_field_too_long", f"the field {key} is too long")
            out[key] = value.strip()
    return out


def _reason(v: View, form: dict[str, str]) -> str:
    reason = form.get("reason", "")
    if not reason:
        raise Unprocessable("reason_required", _say(v, "Give a reason: it is kept with what you do."))
    if len(reason) > REASON_MAX:
        raise Unprocessable("reason_too_long", _say(v, "A reason has at most {n} characters.", n=REASON_MAX))
    return reason


def _form_date(v: View, form: dict[str, str], name: str, label: str) -> date | None:
    text = form.get(name, "")
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Unprocessable("date_invalid", _say(v, "{field}: “{value}” is not a date: write YYYY-MM-DD.",
                       field=v.lang._(label), value=text[:40])) from None  # fmt: skip
    if not date(1900, 1, 1) <= day <= date(2999, 12, 31):
        raise Unprocessable("date_out_of_range", _say(v, "{field}: “{value}” lies outside 1900-01-01 to "
                       "2999-12-31.", field=v.lang._(label), value=text))  # fmt: skip
    return day


def _form_amount(v: View, text: str, field: str) -> str | None:
    """An amount typed into a form field, read as the page's locale writes it (`parse_local_amount`): the wire's
    decimal string, None for an empty field; 422 `amount_invalid` naming the field and echoing what was typed."""
    if not text:
        return None
    try:
        return parse_local_amount(text, v.fmt.locale, v.business.currency)
    except AmountTextError as exc:
        why = AMOUNT_REASONS[exc.reason]
        example = v.fmt.example()[0]
        raise Unprocessable("amount_invalid", _say(v, why, field=field, typed=text[:60], example=example,
                       decimals=currency_decimals(v.business.currency))) from None  # fmt: skip


AMOUNT_REASONS = {
    "empty": "{field}: “{typed}” is not an amount; write it like {example}.",
    "not an amount": "{field}: “{typed}” is not an amount; write it like {example}.",
    "sign": "{field}: “{typed}” has a sign; amounts are positive: put it in the other column.",
    "digit groups": "{field}: “{typed}” is ambiguous: the separators do not group thousands as this page writes "
    "amounts. Write it like {example}, or without thousands separators.",
    "too many decimals": "{field}: “{typed}” has more than {decimals} decimals; write it like {example}.",
    "zero": "{field}: “{typed}” is zero; leave the field empty instead.",
    "too large": "{field}: “{typed}” is larger than an amount can be.",
}


@post("/{code:int}/journal/{entry:str}/reversal", status_code=303)
async def reverse_entry(request: Request[Any, Any, Any], code: Code, entry: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    form = await _form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = _reason(v, form)
    entry_id = _path_id(entry, "entry_not_found", "entry")
    body = ReversalIn(
        effective_date=_form_date(v, form, "effective_date", "Date of the reversal"),
        description=f"Reversal of entry {entry_id}: {reason}"[:500],
        reason=reason,
    )
    idem = f"web-reversal-{entry_id}"  # one reversal per entry: a second submit replays the first
    with v.acting():
        posted = await journal.reverse_entry(
            v.ctx, v.business, entry_id, body, idem_key=idem, request_sha256=_sha(request, body)
        )
    return Redirect(_url(v, f"journal/{posted.entries[0].id}"), status_code=303, headers=HEADERS)


def _sha(request: Request[Any, Any, Any], body: Any) -> bytes:
    canonical = msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(f"POST {request.url.path}\n".encode() + canonical).digest()


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
    form = await _form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = _reason(v, form)
    idem = form.get("idem", "")
    if not 8 <= len(idem) <= 64 or not idem.isascii():
        raise BadRequest("form_invalid", _say(v, "Reload the form and send it again."))
    day = _form_date(v, form, "effective_date", "Date")
    if day is None:
        raise Unprocessable("date_required", _say(v, "The entry needs its date."))
    _ = v.lang._
    lines = []
    debits = credits = 0
    cur = v.business.currency
    for n in range(1, CORRECTION_LINES + 1):
        account, debit, credit = (form.get(f"{k}_{n}", "") for k in ("account", "debit", "credit"))
        if not (account or debit or credit):
            continue
        debit_amount = _form_amount(v, debit, _("Line {n}, debit").format(n=n))
        credit_amount = _form_amount(v, credit, _("Line {n}, credit").format(n=n))
        if not account:
            raise Unprocessable("account_required", _say(v, "Line {n}: choose the account.", n=n))
        if (debit_amount is None) == (credit_amount is None):
            raise Unprocessable("amount_required", _say(v, "Line {n}: give a debit or a credit amount, not both.",
                           n=n))  # fmt: skip
        debits += parse_amount(debit_amount, cur) if debit_amount else 0
        credits += parse_amount(credit_amount, cur) if credit_amount else 0
        lines.append(
            LineIn(
                account=account, debit=debit_amount, credit=credit_amount, customer=form.get(f"customer_{n}") or None
            )
        )
    if debits != credits:
        raise Unprocessable("entry_unbalanced", _say(v, "Debits ({debits}) and credits ({credits}) differ: an "
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
            v.ctx, v.business, [draft], idem_key=f"web-{idem}", request_sha256=_sha(request, body)
        )
    return Redirect(_url(v, f"journal/{posted.entries[0].id}"), status_code=303, headers=HEADERS)


# --- statements ----------------------------------------------------------------------------------------
def _default_range(v: View, from_date: date | None, to_date: date | None) -> tuple[date, date]:
    today = v.ctx.today()
    start = from_date or date(today.year, 1, 1)
    end = to_date or today
    if start > end:
        raise BadRequest("query_parameter_invalid", _say(v, "From ({start}) is after To ({end}).",
                       start=v.fmt.day(start), end=v.fmt.day(end)))  # fmt: skip
    return start, end


def _report_sheet(v: View, id: str, sections: list[tuple[str, list[Any]]], totals: list[tuple[str, str]]) -> Sheet:
    _ = v.lang._
    sheet = v.sheet(
        id, "", [("Section", "text"), ("Account", "text"), ("Alt. no.", "text"), ("Name", "text"), ("Amount", "amount")]
    )
    for section, lines in sections:
        for x in lines:
            sheet.add(
                _(section),
                Cell(x.account, href=_url(v, f"accounts/{x.account}/register")),
                x.alt_number or "",
                v.lang.account(x.name),
                x.amount,
                account=x.account,
            )
    for label, amount in totals:
        sheet.total(_(label), "", "", "", amount, total=label)
    return sheet


@get("/{code:int}/income-statement")
async def income_statement(
    request: Request[Any, Any, Any],
    code: Code,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
) -> Response[Any]:
    v = await open_page(request, code)
    start, end = _default_range(v, from_date, to_date)
    report = await reports.income_statement(v.ctx, v.business, from_date=start, to_date=end)
    sheet = _report_sheet(
        v,
        "income-statement",
        [("Revenue", report.revenue), ("Expenses", report.expenses)],
        [
            ("Total revenue", report.total_revenue),
            ("Total expenses", report.total_expenses),
            ("Net income", report.net_income),
        ],
    )
    chart_start = max(start, end.replace(day=1) - timedelta(days=366)).replace(day=1)
    months = await find.monthly_sales(v.ctx, v.business, chart_start, end)
    _ = v.lang._
    monthly = v.sheet(
        "monthly-sales",
        "Revenue, returns and goodwill per month",
        [
            ("Month", "text"),
            ("Revenue", "amount"),
            ("Cancellations", "amount"),
            ("Returns", "amount"),
            ("Goodwill", "amount"),
            ("Other deductions", "amount"),
        ],
    )
    for m in months:
        monthly.add(
            f"{m.month:%Y-%m}",
            _money(v, m.revenue),
            _money(v, m.cancellations),
            _money(v, m.returns),
            _money(v, m.goodwill),
            _money(v, m.other_reductions),
            month=f"{m.month:%Y-%m}",
        )
    chart = bar_chart(
        _("Revenue, returns and goodwill per month"),
        [f"{m.month:%m/%y}" for m in months],
        [
            (_("Revenue"), [m.revenue / 100 for m in months]),
            (_("Returns"), [m.returns / 100 for m in months]),
            (_("Goodwill"), [m.goodwill / 100 for m in months]),
            (_("Cancellations"), [m.cancellations / 100 for m in months]),
        ],
        value=lambda x: v.fmt.amount(f"{x:.0f}", "JPY"),
        chart_id="chart-monthly-sales",
    )
    return v.respond(
        "statement.html",
        "income-statement",
        [sheet, monthly],
        report=report,
        start=start,
        end=end,
        heading=_("Income statement"),
        chart=chart,
        dated=False,
    )


@get("/{code:int}/balance-sheet")
async def balance_sheet(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    day = as_of or v.ctx.today()
    report = await reports.balance_sheet(v.ctx, v.business, as_of=day)
    sheet = _report_sheet(
        v,
        "balance-sheet",
        [("Assets", report.assets), ("Liabilities", report.liabilities), ("Equity", report.equity)],
        [
            ("Current earnings", report.current_earnings),
            ("Total assets", report.total_assets),
            ("Total liabilities and equity", report.total_liabilities_and_equity),
        ],
    )
    return v.respond(
        "statement.html",
        "balance-sheet",
        [sheet],
        report=report,
        as_of=day,
        dated=True,
        heading=v.lang._("Balance sheet"),
        chart=None,
        verdict=_sheet_verdict(v, report),
    )


def _sheet_verdict(v: View, report: BalanceSheetOut) -> str:
    """Assets against liabilities and equity in the page's language: which side exceeds, by a positive amount."""
    cur = report.currency
    assets, other = (_signed_minor(x, cur) for x in (report.total_assets, report.total_liabilities_and_equity))
    if assets == other:
        return v.lang._("Assets equal liabilities and equity.")
    text = (
        v.lang._("OUT OF BALANCE: assets exceed liabilities and equity by {amount}.")
        if assets > other
        else v.lang._("OUT OF BALANCE: liabilities and equity exceed assets by {amount}.")
    )
    return text.format(amount=v.fmt.amount(format_amount(abs(assets - other), cur), cur))


def _signed_minor(text: str, currency: str) -> int:
    """A signed decimal string of the API ("-5.00") in minor units."""
    negative = text.startswith("-")
    minor = parse_amount(text[1:] if negative else text, currency, allow_zero=True)
    return -minor if negative else minor


# --- VAT -----------------------------------------------------------------------------------------------
# Umsatzsteuer-Voranmeldung: taxable base and tax of sales at 19 % (Kz 81), at 7 % (Kz 86), at other rates
# (Kz 35 base, Kz 36 tax); reductions and §17 UStG corrections are negative amounts in the same lines.
USTVA = {Decimal(19): "81", Decimal(7): "86"}


@get("/{code:int}/vat")
async def vat_page(request: Request[Any, Any, Any], code: Code, year: FromQuery[int | None] = None) -> Response[Any]:
    v = await open_page(request, code)
    y, start, end = _year(v, year)
    rows = await find.vat_summary(v.ctx, v.business, start, end)
    _ = v.lang._
    sheet = v.sheet(
        "vat-summary",
        "VAT per month and rate",
        [
            ("Month", "text"),
            ("Rate %", "text"),
            ("Sales (net)", "amount"),
            ("VAT on sales", "amount"),
            ("Credit notes and returns (net)", "amount"),
            ("VAT on credit notes", "amount"),
            ("Bad debts, §17 UStG (net)", "amount"),
            ("VAT on bad debts", "amount"),
            ("Taxable amount", "amount"),
            ("VAT", "amount"),
        ],
        "No VAT booked in this year.",
    )
    for r in rows:
        rate = format(r.rate.normalize(), "f")
        sheet.add(
            f"{r.month:%Y-%m}",
            rate,
            _money(v, r.sales),
            _money(v, r.sales_tax),
            _money(v, r.reductions),
            _money(v, r.reductions_tax),
            _money(v, r.bad_debts),
            _money(v, r.bad_debts_tax),
            _money(v, r.base),
            _money(v, r.tax),
            month=f"{r.month:%Y-%m}",
            rate=rate,
        )
    sheet.total(
        _("Total"),
        "",
        *(
            _money(v, sum(getattr(r, k) for r in rows))
            for k in ("sales", "sales_tax", "reductions", "reductions_tax", "bad_debts", "bad_debts_tax", "base", "tax")
        ),
    )
    sheets = [sheet]
    if v.business.country == "DE":
        ustva = v.sheet(
            "ustva",
            "Umsatzsteuer-Voranmeldung",
            [
                ("Month", "text"),
                ("Kz 81 base (19 %)", "amount"),
                ("Kz 81 tax", "amount"),
                ("Kz 86 base (7 %)", "amount"),
                ("Kz 86 tax", "amount"),
                ("Kz 35 base (other rates)", "amount"),
                ("Kz 36 tax", "amount"),
                ("Output VAT", "amount"),
            ],
            "No VAT booked in this year.",
        )
        by_month: dict[date, dict[str, int]] = {}
        for r in rows:
            if r.rate == 0:
                continue
            box = USTVA.get(r.rate, "35")
            m = by_month.setdefault(r.month, dict.fromkeys(("81", "81t", "86", "86t", "35", "36t"), 0))
            m[box] += r.base
            m[{"81": "81t", "86": "86t", "35": "36t"}[box]] += r.tax
        for month, m in sorted(by_month.items()):
            ustva.add(
                f"{month:%Y-%m}",
                *(_money(v, m[k]) for k in ("81", "81t", "86", "86t", "35", "36t")),
                _money(v, m["81t"] + m["86t"] + m["36t"]),
                month=f"{month:%Y-%m}",
            )
        sheets.append(ustva)
    return v.respond("vat.html", "vat", sheets, year=y)


# --- receivables ---------------------------------------------------------------------------------------
BUCKET_LABELS = {
    "not_due": "Not yet due",
    "days_0_30": "0–30 days",
    "days_31_60": "31–60 days",
    "days_61_90": "61–90 days",
    "days_over_90": "over 90 days",
}


@get("/{code:int}/ageing")
async def ageing_page(
    request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    day = as_of or v.ctx.today()
    report = await find.ageing(v.ctx, v.business, day)
    _ = v.lang._
    sheet = v.sheet(
        "ageing",
        "",
        [
            ("Customer", "text"),
            ("Name", "text"),
            ("Oldest due", "date"),
            *((BUCKET_LABELS[b], "amount") for b in find.AGEING_BUCKETS),
            ("Fees and interest", "amount"),
            ("Credit balance", "amount"),
            ("Total", "amount"),
        ],
        "No receivables are open.",
    )
    shown = report.rows if v.downloading else report.rows[:500]
    for r in shown:
        sheet.add(
            Cell(r.customer, href=_url(v, f"customers/{r.customer}")),
            r.name or "",
            r.oldest_due,
            *(_money(v, getattr(r, b)) for b in find.AGEING_BUCKETS),
            _money(v, r.charges),
            _money(v, r.credit),
            _money(v, r.total),
            customer=r.customer,
        )
    t = report.totals
    sheet.total(
        _("Total"),
        "",
        None,
        *(_money(v, t[b]) for b in find.AGEING_BUCKETS),
        _money(v, t["charges"]),
        _money(v, t["credit"]),
        _money(v, t["total"]),
        total=v.business.currency,
    )
    chart = bar_chart(
        _("Open receivables by days past due"),
        [_(BUCKET_LABELS[b]) for b in find.AGEING_BUCKETS],
        [(_("Open"), [t[b] / 100 for b in find.AGEING_BUCKETS])],
        value=lambda x: v.fmt.amount(f"{x:.2f}"),
        chart_id="chart-ageing",
    )
    return v.respond(
        "ageing.html",
        "ageing",
        [sheet],
        report=report,
        as_of=day,
        chart=chart,
        more=len(report.rows) > len(shown),
        owing=sum(1 for r in report.rows if r.total > 0),
    )


@get("/{code:int}/customers")
async def customers(
    request: Request[Any, Any, Any],
    code: Code,
    q: Annotated[str | None, QueryParameter(max_length=find.SEARCH_MAX)] = None,
    as_of: FromQuery[date | None] = None,
    sort: Annotated[str, QueryParameter(max_length=20)] = "customer",
    side: Annotated[str | None, QueryParameter(max_length=10)] = None,
    overdue: Annotated[str | None, QueryParameter(max_length=5)] = None,
    min_level: Annotated[str | None, QueryParameter(max_length=10)] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    level = parse_ascii_int(min_level or "0", length_max=2)  # the form sends an empty field as ""
    if level is None:
        raise BadRequest("query_parameter_invalid", _say(v, "Dunning level at least: “{value}” is not a "
                       "number from 0 to 99.", value=min_level))  # fmt: skip
    if sort not in find.CUSTOMER_SORTS:
        raise BadRequest("query_parameter_invalid", _say(v, "Sort by: “{value}” is not one of {choices}.",
                       value=sort, choices=", ".join(v.lang._(SORT_LABELS[s]) for s in find.CUSTOMER_SORTS)))  # fmt: skip
    if side not in (None, "", "DEBIT", "CREDIT", "BALANCED"):
        raise BadRequest("query_parameter_invalid", _say(v, "Balance: “{value}” is not one of DEBIT, CREDIT, "
                       "BALANCED.", value=side))  # fmt: skip
    day = as_of or v.ctx.today()
    where = find.CustomerFilter(
        q=q,
        sort=sort,
        side=side or None,  # type: ignore[arg-type]  # checked above
        overdue=overdue in ("1", "on", "true"),
        min_level=level,
    )
    page = await find.find_customers(
        v.ctx, v.business, q=q, cursor=cursor or None, limit=v.rows, as_of=day, where=where
    )
    sheet = v.sheet(
        "customers",
        "",
        [
            ("Customer", "text"),
            ("Name", "text"),
            ("Balance", "amount"),
            ("Oldest due", "date"),
            ("Dunning level", "int"),
        ],
        "No customer found." if q or where.scans or side else "No customer has been booked yet.",
    )
    for c in page.items:
        sheet.add(
            Cell(c.customer, href=_url(v, f"customers/{c.customer}?as_of={day}")),
            c.name or "",
            _signed(v, c.balance, c.side),
            c.oldest_due,
            c.dunning_level or None,
            customer=c.customer,
        )
    filters = {"q": q, "as_of": as_of, "sort": None if sort == "customer" else sort, "side": side,
               "overdue": "1" if where.overdue else None, "min_level": level or None}  # fmt: skip
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond(
        "customers.html",
        "customers",
        [sheet],
        page=page,
        q=q or "",
        as_of=day,
        where=where,
        filters=shown,
        sorts=[(s, SORT_LABELS[s]) for s in find.CUSTOMER_SORTS],
        first=cursor is None,
    )


SORT_LABELS = {  # balance: who owes most first; oldest due: longest overdue first; dunning level: highest first
    "customer": "Customer number",
    "balance": "Balance",
    "oldest_due": "Oldest due",
    "dunning_level": "Dunning level",
}


@get("/{code:int}/customers/{customer:str}")
async def customer(
    request: Request[Any, Any, Any], code: Code, customer: FromPath[str], as_of: FromQuery[date | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    if not 1 <= len(customer) <= 64:
        raise NotFound("customer_not_found", "no such customer")  # the message: webkit.CODE_MESSAGES
    day = as_of or v.ctx.today()
    account = await reports.customer_account(v.ctx, v.business, customer, as_of=day)
    items = await customer_open_items(v.ctx, v.business, customer, day)
    _ = v.lang._
    open_sheet = v.sheet(
        "open-items",
        "Open items",
        [("Order or reference", "text"), ("Due", "date"), ("Amount", "amount"), ("Overdue", "text"),
         ("Paused", "text")],
        "Nothing open.",
    )  # fmt: skip
    # an open item is an order's, or a posted entry's without one (its `reference`, e.g. a manual sale): only
    # an order that exists is linked
    orders_known = await _existing_orders(v, [p.order_reference for p in items.principal if p.order_reference])
    for p in items.principal:
        ref = p.order_reference
        open_sheet.add(
            (Cell(ref, href=_url(v, f"orders/{ref}")) if ref in orders_known else ref) if ref else "–",
            p.due_date,
            p.amount,
            _("yes") if p.overdue else "",
            _("yes") if p.paused else "",
            order=ref or "",
        )
    for label, key, value in [
        ("Dunning costs", "costs", items.costs),
        ("Interest", "interest", items.interest),
        ("Unallocated credit", "credit", items.credit),
        ("Total open", "total", items.total),
        ("of which overdue", "overdue", items.overdue_total),
    ]:
        open_sheet.total(_(label), "", Cell(value, attrs=(("id", key),)))
    orders = await find.find_orders(
        v.ctx, v.business, customer=customer, from_date=None, to_date=None, status=None, cursor=None, limit=PAGE
    )
    order_sheet = _orders_sheet(v, orders.items, "Orders")
    notices = await dunning_notices.list_notices(v.ctx, v.business, customer=customer, after=0, limit=PAGE)
    notice_sheet = _notices_sheet(v, notices)
    names = await find.find_customers(v.ctx, v.business, q=customer, cursor=None, limit=1, as_of=day)
    name = next((c.name for c in names.items if c.customer == customer), None)
    return v.respond(
        "customer.html",
        "customers",
        [open_sheet, order_sheet, notice_sheet],
        account=account,
        items=items,
        level=items.dunning_level if _signed_minor(items.total, v.business.currency) > 0 else 0,  # none once settled
        as_of=day,
        name=name,
        customer=customer,
        ar=(await accounts_by_role(v.ctx, v.business))("AR").number,
    )


async def _existing_orders(v: View, refs: list[str]) -> set[str]:
    rows = await v.ctx.reports_pool.fetch(
        "SELECT order_ref FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = ANY($3::text[])",
        v.business.merchant_id,
        v.business.code,
        refs,
    )
    return {r["order_ref"] for r in rows}


# --- orders --------------------------------------------------------------------------------------------
def _orders_sheet(v: View, orders: list[find.OrderSummaryOut], title: str = "") -> Sheet:
    _ = v.lang._
    sheet = v.sheet(
        "orders",
        title,
        [
            ("Order", "text"),
            ("Date", "date"),
            ("Customer", "text"),
            ("Name", "text"),
            ("Status", "text"),
            ("Gross", "amount"),
            ("Documents", "text"),
        ],
        "No orders.",
    )
    for o in orders:
        docs = ", ".join(f"{_(d.kind)} {d.reference}" for d in o.documents)
        sheet.add(
            Cell(o.order_reference, href=_url(v, f"orders/{o.order_reference}")),
            o.order_date,
            Cell(o.customer, href=_url(v, f"customers/{o.customer}")),
            o.name or "",
            _(o.status),
            o.gross_amount,
            docs,
            order=o.order_reference,
        )
    return sheet


@get("/{code:int}/orders")
async def orders_page(
    request: Request[Any, Any, Any],
    code: Code,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    status: Annotated[str | None, QueryParameter(max_length=32)] = None,
    cursor: Cursor = None,
) -> Response[Any]:
    v = await open_page(request, code)
    page = await find.find_orders(
        v.ctx,
        v.business,
        customer=customer or None,
        from_date=from_date,
        to_date=to_date,
        status=status or None,
        cursor=cursor or None,
        limit=v.rows,
    )
    filters = {"customer": customer, "from": from_date, "to": to_date, "status": status}
    shown = {k: str(x) for k, x in filters.items() if x}
    return v.respond(
        "orders.html",
        "orders",
        [_orders_sheet(v, page.items)],
        page=page,
        filters=shown,
        statuses=find.ORDER_STATUSES,
        first=cursor is None,
    )


@get("/{code:int}/orders/{order:str}")
async def order_page(request: Request[Any, Any, Any], code: Code, order: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    owner = await v.ctx.reports_pool.fetchval(
        "SELECT customer FROM orders WHERE merchant_id = $1 AND business = $2 AND order_ref = $3",
        v.business.merchant_id,
        v.business.code,
        order[:20],
    )
    if owner is None or len(order) > 20:
        raise NotFound("order_not_found", f"order {order} not found")
    o = await get_order(v.ctx, v.business, owner, order)
    summary = (
        await find.find_orders(
            v.ctx,
            v.business,
            customer=owner,
            from_date=o.order_date,
            to_date=o.order_date,
            status=None,
            cursor=None,
            limit=500,
        )
    ).items
    this = next(s for s in summary if s.order_reference == order)
    _ = v.lang._
    items = v.sheet(
        "items",
        "Items",
        [
            ("Item", "int"),
            ("Description", "text"),
            ("Quantity", "int"),
            ("Unit price (gross)", "amount"),
            ("VAT %", "text"),
            ("State", "text"),
            ("Invoice", "text"),
            ("Returned", "int"),
        ],
    )
    for i in o.items:
        items.add(
            i.item_reference,
            i.description,
            i.quantity,
            i.gross_unit_price,
            i.vat_rate,
            _(i.state),
            i.invoice_reference or "",
            i.returned_quantity,
            item=i.item_reference,
        )
    docs = v.sheet(
        "documents",
        "Documents",
        [("Kind", "text"), ("Number", "text"), ("Date", "date"), ("Gross", "amount"), ("Entry", "int")],
        "No documents yet.",
    )
    for d in this.documents:
        docs.add(
            _(d.kind),
            d.reference,
            d.document_date,
            d.gross_amount,
            Cell(d.entry_id, href=_url(v, f"journal/{d.entry_id}")) if d.entry_id else None,
            document=d.reference,
        )
    charges = v.sheet(
        "charges",
        "Amazon Pay charges",
        [("Charge", "text"), ("Amount", "amount"), ("Captured", "amount"), ("State", "text"), ("Invoice", "text")],
        "No charges.",
    )
    for c in this.charges:
        charges.add(c.charge_id, c.amount, c.captured, c.state, c.invoice_reference or "", charge=c.charge_id)
    refunds = v.sheet(
        "refunds",
        "Refunds",
        [("Reference", "text"), ("Refund", "text"), ("Amount", "amount"), ("State", "text")],
        "No refunds.",
    )
    for f in this.refunds:
        refunds.add(f.reference, f.refund_id or "", f.amount, f.state, refund=f.reference)
    return v.respond("order.html", "orders", [items, docs, charges, refunds], order=o, summary=this)


# --- Amazon Pay settlements and bank statements ----------------------------------------------------------
@get("/{code:int}/settlements")
async def settlements_page(
    request: Request[Any, Any, Any], code: Code, year: FromQuery[int | None] = None
) -> Response[Any]:
    v = await open_page(request, code)
    y, start, end = _year(v, year)
    today = v.ctx.today()
    if year is None:  # the last twelve months up to this one
        start, end = date(today.year - 1, today.month, 1) + timedelta(days=31), today
        start = start.replace(day=1)
    end = min(end, today)  # no month-end balances of months to come
    listed = await list_settlements(v.ctx, v.business, 500 if v.downloading else 100)
    _ = v.lang._
    sheet = v.sheet(
        "settlements",
        "Settlements",
        [
            ("Settlement", "text"),
            ("Period from", "date"),
            ("Period to", "date"),
            ("Imported", "date"),
            ("Source", "text"),
            ("Rows", "int"),
            ("Exceptions", "int"),
        ],
        "No settlement has been imported yet.",
    )
    for s in listed.settlements:
        sheet.add(
            Cell(s.settlement_id, href=_url(v, f"settlements/{s.settlement_id}")),
            s.period_start.date() if s.period_start else None,
            s.period_end.date() if s.period_end else None,
            s.imported_at.date(),
            _(s.source),
            s.rows,
            s.exception_count,
            settlement=s.settlement_id,
        )
    months = await find.amazon_pay_months(v.ctx, v.business, start, end)
    money = v.sheet(
        "amazon-pay",
        "Amazon Pay clearing and reserve against payouts",
        [("Month", "text"), ("Clearing (Amazon owes)", "amount"), ("Reserve", "amount"), ("Payouts", "amount")],
    )
    for m in months:
        money.add(
            f"{m.month:%Y-%m}",
            _money(v, m.clearing),
            _money(v, m.reserve),
            _money(v, m.payouts),
            month=f"{m.month:%Y-%m}",
        )
    chart = bar_chart(
        _("Amazon Pay clearing and reserve against payouts"),
        [f"{m.month:%m/%y}" for m in months],
        [
            (_("Clearing (Amazon owes)"), [m.clearing / 100 for m in months]),
            (_("Reserve"), [m.reserve / 100 for m in months]),
            (_("Payouts"), [m.payouts / 100 for m in months]),
        ],
        value=lambda x: v.fmt.amount(f"{x:.0f}", "JPY"),
        chart_id="chart-amazon-pay",
    )
    return v.respond(
        "settlements.html",
        "settlements",
        [sheet, money],
        chart=chart,
        year=y if year else None,
        reports=listed.reports,
        start=start,
        end=end,
    )


@get("/{code:int}/settlements/{settlement_id:str}")
async def settlement_page(request: Request[Any, Any, Any], code: Code, settlement_id: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    if not 1 <= len(settlement_id) <= 64:
        raise NotFound("settlement_not_found", f"settlement {settlement_id} was not imported")
    summary = await get_settlement(v.ctx, v.business, settlement_id)
    rows = await v.ctx.reports_pool.fetch(
        "SELECT line_no, transaction_type, transaction_id, seller_reference_id, order_reference_id, description, "
        "amount_minor, fee_minor, posted_on, outcome FROM settlement_rows WHERE merchant_id = $1 AND business = $2 "
        "AND settlement_id = $3 ORDER BY line_no LIMIT 10000",
        v.business.merchant_id,
        v.business.code,
        settlement_id,
    )
    sheet = v.sheet(
        "settlement-rows",
        "Rows and what they matched",
        [
            ("Line", "int"),
            ("Type", "text"),
            ("Transaction", "text"),
            ("Order", "text"),
            ("Description", "text"),
            ("Amount", "amount"),
            ("Fee", "amount"),
            ("Posted", "date"),
            ("Outcome", "text"),
        ],
    )
    for r in rows:
        sheet.add(
            r["line_no"],
            r["transaction_type"],
            r["transaction_id"],
            r["seller_reference_id"] or r["order_reference_id"],
            r["description"],
            _money(v, r["amount_minor"]),
            _money(v, r["fee_minor"]),
            r["posted_on"],
            v.lang._(r["outcome"]) if r["outcome"] else "",
            line=r["line_no"],
        )
    return v.respond("settlement.html", "settlements", [sheet], summary=summary)


@get("/{code:int}/bank-statements")
async def statements_page(request: Request[Any, Any, Any], code: Code, cursor: Cursor = None) -> Response[Any]:
    v = await open_page(request, code)
    page = await find.bank_statements(
        v.ctx,
        v.business,
        account=None,
        from_date=None,
        to_date=None,
        cursor=cursor or None,
        limit=500 if v.downloading else PAGE,
    )
    sheet = v.sheet(
        "bank-statements",
        "",
        [
            ("Date", "date"),
            ("Statement", "text"),
            ("Account", "text"),
            ("Lines", "int"),
            ("Credits", "amount"),
            ("Debits", "amount"),
            ("Exceptions", "int"),
        ],
        "No bank statement has been imported yet.",
    )
    for s in page.items:
        href = _url(v, f"bank-statements/{s.statement_date}/{s.statement_id}") + (
            f"?account={s.account}" if s.account else ""
        )
        sheet.add(
            s.statement_date,
            Cell(s.statement_id, href=href),
            s.account,
            s.line_count,
            s.credits,
            s.debits,
            len(s.exceptions),
            statement=s.statement_id,
        )
    return v.respond("bank_statements.html", "bank-statements", [sheet], page=page, first=cursor is None)


@get("/{code:int}/bank-statements/{statement_on:str}/{statement_id:str}")
async def statement_page(
    request: Request[Any, Any, Any],
    code: Code,
    statement_on: FromPath[str],
    statement_id: FromPath[str],
    account: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Response[Any]:
    v = await open_page(request, code)
    try:
        day = date.fromisoformat(statement_on)
    except ValueError:
        raise NotFound("statement_not_found", _say(v, "This bank statement was not imported.")) from None
    found = await find.bank_statement(v.ctx, v.business, day, statement_id[:64], account or None)
    if not found:
        raise NotFound("statement_not_found", f"no bank statement {statement_id} of {day.isoformat()}")
    s = found[0]
    _ = v.lang._
    lines = v.sheet(
        "statement-lines",
        "Lines and matches",
        [
            ("Entry", "int"),
            ("Detail", "int"),
            ("Booked", "date"),
            ("Amount", "amount"),
            ("Counterparty", "text"),
            ("IBAN", "text"),
            ("Outcome", "text"),
            ("Matched", "text"),
            ("Journal entry", "int"),
        ],
    )
    for line in s.lines:
        lines.add(
            line.entry,
            line.detail,
            line.booking_date,
            line.amount,
            line.counterparty_name or "",
            line.counterparty_iban or "",
            _(line.outcome),
            _match(v, line.match),
            Cell(line.entry_id, href=_url(v, f"journal/{line.entry_id}")) if line.entry_id else None,
            entry=line.entry,
        )
    exceptions = v.sheet(
        "statement-exceptions",
        "Reconciliation exceptions",
        [("No.", "int"), ("Line", "int"), ("Kind", "text"), ("Amount", "amount"), ("State", "text")],
        "None.",
    )
    for e in s.exceptions:
        exceptions.add(e.exception_id, e.line, _(e.kind), e.amount, _(e.state), exception=e.exception_id, kind=e.kind)
    checks = v.sheet(
        "statement-checks",
        "Balance checks",
        [("Check", "text"), ("Outcome", "text"), ("Statement", "amount"), ("Compared with", "amount"),
         ("Difference", "amount"), ("Exception", "int")],
        "The statement was imported before its balances were checked.",
    )  # fmt: skip
    for c in s.checks:
        outcome = Cell(_(c.outcome), attrs=(("title", c.detail),))  # the check in words, as the API gives it
        checks.add(
            _(_CHECKS[c.check]), outcome, c.stated, c.expected, c.difference, c.exception_id,
            check=c.check, outcome=c.outcome,
        )  # fmt: skip
    return v.respond("bank_statement.html", "bank-statements", [lines, exceptions, checks], statement=s)


# what a bank line paid, as `payments.remittance` names it ("invoice RE-4711"), in the page's language
_MATCHES = ("payment reference", "invoice", "order", "customer", "settlement")


def _match(v: View, text: str | None) -> str:
    for what in _MATCHES:
        if text and text.startswith(f"{what} "):
            return v.lang._(f"{what} {{reference}}").format(reference=text[len(what) + 1 :])
    return text or ""


# the clause `payments.bank` starts a parked line's description with (stored English text: the rest, the
# bank's reference, counterparty and remittance, is shown as it is)
_PARKED = ("no payout, invoice, order or customer matches", "money out of the bank")


def _described(v: View, text: str) -> str:
    for clause in _PARKED:
        if text.startswith(f"{clause};"):
            return v.lang._(clause) + text[len(clause) :]
    return text


_CHECKS = {
    "opening_balance": "Opening balance = previous closing balance",
    "closing_balance": "Opening balance + lines = closing balance",
    "ledger_balance": "Closing balance = ledger's bank account",
}


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
            Cell(d.order_reference, href=_url(v, f"orders/{d.order_reference}")),
            Cell(d.customer, href=_url(v, f"customers/{d.customer}")),
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


def _letter_url(v: View, notice_id: int) -> str:
    return _url(v, f"dunning/notices/{notice_id}/letter.pdf")


def _notices_sheet(v: View, found: list[dunning_notices.NoticeOut]) -> Sheet:
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
            Cell(n.customer, href=_url(v, f"customers/{n.customer}")),
            n.level,
            _(n.title),
            n.issued_on,
            n.pay_by,
            n.content.get("total"),
            Cell(_("Letter (PDF)"), href=_letter_url(v, n.notice_id)),
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
        "notices.html", "notices", [_notices_sheet(v, found)], next_after=found[-1].notice_id if more else None
    )


@get("/{code:int}/dunning/notices/{notice:str}/document")
async def notice_document(request: Request[Any, Any, Any], code: Code, notice: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    notice_id = _path_id(notice, "notice_not_found", "notice")
    found = await dunning_notices.get_notice(v.ctx, v.business, notice_id)
    name = await v.ctx.pool.fetchval("SELECT name FROM merchants WHERE merchant_id = $1", v.business.merchant_id)
    return Response(dunning_notices.render_html(found, str(name)), media_type="text/html", headers=HEADERS)


@get("/{code:int}/dunning/notices/{notice:str}/letter.pdf")
async def notice_letter(request: Request[Any, Any, Any], code: Code, notice: FromPath[str]) -> Response[Any]:
    """The notice's letter as PDF (DIN 5008, `dunning.letters`); 409 `profile_missing` until the business
    profile is set; 404 for an id that is not one (`_path_id`)."""
    v = await open_page(request, code)
    notice_id = _path_id(notice, "notice_not_found", "notice")
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
            Cell(a["customer"], href=_url(v, f"customers/{a['customer']}")),
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


# --- reconciliation ------------------------------------------------------------------------------------
@get("/{code:int}/reconciliation")
async def reconciliation(
    request: Request[Any, Any, Any],
    code: Code,
    shown: Annotated[str, QueryParameter(name="state")] = "open",
    after: After = 0,
) -> Response[Any]:
    v = await open_page(request, code)
    if shown not in ("open", "resolved", "dismissed", "all"):
        raise BadRequest("query_parameter_invalid", _say(v, "State: “{value}” is not one of open, resolved, "
                       "dismissed, all.", value=shown[:40]))  # fmt: skip
    page = await list_exceptions(
        v.ctx,
        v.business,
        state=None if shown == "all" else shown,
        source=None,
        after=max(after, 0),
        limit=5000 if v.downloading else PAGE,
    )
    _ = v.lang._
    sheet = v.sheet(
        "exceptions",
        "",
        [
            ("No.", "int"),
            ("Source", "text"),
            ("Reference", "text"),
            ("Line", "int"),
            ("Kind", "text"),
            ("Description", "text"),
            ("Amount", "amount"),
            ("State", "text"),
            ("Entry", "int"),
        ],
        "No exceptions.",
    )
    for e in page.items:
        entry = e.resolution_entry_id or e.suspense_entry_id
        sheet.add(
            e.exception_id,
            _(e.source),
            e.source_reference,
            e.line,
            _(e.kind),
            _described(v, e.description),
            Cell(e.amount, currency=e.currency, display=f"{v.fmt.amount(e.amount, e.currency)} {e.currency}"),
            _(e.state),
            Cell(entry, href=_url(v, f"journal/{entry}")) if entry else None,
            exception=e.exception_id,
            kind=e.kind,
        )
    open_ones = [e for e in page.items if e.state == "open"]
    index = await account_index(v.ctx, v.business)
    accounts = sorted(index.by_number.values(), key=lambda a: a.number)
    return v.respond(
        "reconciliation.html",
        "reconciliation",
        [sheet],
        page=page,
        state=shown,
        open=open_ones,
        accounts=accounts,
        today=v.ctx.today(),
    )


@post("/{code:int}/reconciliation/resolution", status_code=303)
async def resolve(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    form = await _form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = _reason(v, form)
    exception_id = parse_ascii_int(form.get("exception", ""))
    if exception_id is None or exception_id < 1:
        raise Unprocessable("exception_required", _say(v, "Choose the exception."))
    action = form.get("action", "")
    if action not in ("resolve", "dismiss"):
        raise Unprocessable("action_invalid", _say(v, "Choose to resolve or to dismiss."))
    try:
        body = Resolution(
            action="resolve" if action == "resolve" else "dismiss",
            account=form.get("account") or None,
            customer=form.get("customer") or None,
            reason=reason,
            booking_date=_form_date(v, form, "booking_date", "Booking date"),
        )
    except (msgspec.ValidationError, ValueError) as exc:
        raise Unprocessable("resolution_invalid", str(exc)) from None
    with v.acting():
        await resolve_exception(v.ctx, v.business, exception_id, body)
    return Redirect(_url(v, "reconciliation?state=all"), status_code=303, headers=HEADERS)


# --- periods -------------------------------------------------------------------------------------------
@get("/{code:int}/periods")
async def periods(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    closed = list(reversed(await journal.list_periods(v.ctx, v.business)))
    sheet = v.sheet(
        "periods",
        "",
        [("Month", "text"), ("Closed at", "text"), ("Closed by", "text"), ("G/L report", "text")],
        "No month has been closed yet.",
    )
    for p in closed:
        sheet.add(
            Cell(p.period, href=_url(v, f"periods/{p.period}")),
            v.fmt.moment(p.closed_at),
            p.closed_by,
            Cell("CSV · XLSX · DATEV", href=_url(v, f"periods/{p.period}")),
            period=p.period,
        )
    today = v.ctx.today()
    last = today.replace(day=1) - timedelta(days=1)
    closed_through = await v.ctx.pool.fetchval(
        "SELECT closed_through FROM businesses WHERE merchant_id = $1 AND business = $2",
        v.business.merchant_id,
        v.business.code,
    )
    first = (closed_through + timedelta(days=1)) if closed_through else last.replace(day=1)
    first = max(first, date(last.year - 2, 1, 1))
    closable = []
    m = last.replace(day=1)
    while m >= first.replace(day=1):
        closable.append(f"{m:%Y-%m}")
        m = (m - timedelta(days=1)).replace(day=1)
    return v.respond("periods.html", "periods", [sheet], closable=closable)


@post("/{code:int}/periods/close", status_code=303)
async def close_month(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    form = await _form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = _reason(v, form)
    period = _month(v, form.get("period", ""))
    closed_by = f"{v.viewer.key_name} (key {v.viewer.key_id}, web): {reason}"
    with v.acting():
        await journal.close_period(v.ctx, v.business, period, closed_by, reason=reason)
    return Redirect(_url(v, "periods"), status_code=303, headers=HEADERS)


@get("/{code:int}/periods/{period:str}")
async def gl_report(request: Request[Any, Any, Any], code: Code, period: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    report = await reports.gl_report(v.ctx, v.business, _month(v, period))
    return v.respond("gl_report.html", "periods", [], report=report)


@get("/{code:int}/periods/{period:str}/gl-report")
async def gl_download(
    request: Request[Any, Any, Any],
    code: Code,
    period: FromPath[str],
    file_format: Annotated[str, QueryParameter(name="format")] = "csv",
) -> Response[Any]:
    v = await open_page(request, code)
    if file_format not in FILE_FORMATS:
        raise BadRequest("format_unknown", _say(v, "Format: “{value}” is not one of {formats}.",
                       value=file_format[:20], formats=", ".join(FILE_FORMATS)))  # fmt: skip
    file = await gl_file(v.ctx, v.business, _month(v, period), file_format, created=v.ctx.clock())
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{file.name}"'}
    return Response(file.body, media_type=file.media_type, encoding=file.charset, headers=headers)


# --- errors as pages -----------------------------------------------------------------------------------
def _to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/ui/"
    return Redirect("/ui/sign-in", query_params={"next": _next_page(target)}, status_code=303, headers=HEADERS)


router = Router(
    path="/ui",
    route_handlers=[
        sign_in_form,
        sign_in,
        sign_out,
        businesses,
        trial_balance,
        register,
        journal_page,
        correction_form,
        post_correction,
        entry_page,
        reverse_entry,
        income_statement,
        balance_sheet,
        vat_page,
        ageing_page,
        customers,
        customer,
        orders_page,
        order_page,
        settlements_page,
        settlement_page,
        statements_page,
        statement_page,
        disputes_page,
        notices_page,
        notice_document,
        notice_letter,
        dunning,
        reconciliation,
        resolve,
        periods,
        close_month,
        gl_report,
        gl_download,
    ],
    exception_handlers={SignInRequired: _to_sign_in, KontorError: error_page, HTTPException: error_page},
    before_request=before_page,
    include_in_schema=False,
)
