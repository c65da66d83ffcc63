"""The accountant's read-only web pages: server-rendered, signed in with an accountant (or admin) API key.

Sessions are server-side: the cookie carries a random token (HttpOnly, SameSite=Lax, Secure when the page
was asked for over HTTPS, path /ui), the database keeps only its SHA-256 with the key it was opened with,
so a session ends when it expires, when the accountant signs out, or when the key is revoked. Every page
reads through the same functions the API's handlers call, scoped by the session's merchant, so a page shows
exactly the API's figures; amounts are formatted in the business code's locale (its country's language).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
from babel.dates import format_date
from babel.languages import get_official_languages
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig
from msgspec import Struct

from desk.reports import balance_notes
from dunning.accounts import customer_open_items
from dunning.policy import get_policy
from dunning.runs import list_runs
from ledger import journal, reports
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, KontorError, Unauthorized
from ledger.glexport import FILE_FORMATS, gl_file
from ledger.http.access import HTML_HEADERS
from ledger.http.deps import BusinessCodePath as Code
from ledger.http.deps import Cursor
from ledger.http.inputs import check_date_parameters
from ledger.money import currency_decimals, format_amount
from ledger.tenancy import authenticate, get_business, list_businesses
from ledger.textsafe import ascii_digits, parse_ascii_int
from payments.reconciliation import list_exceptions

__all__ = ["COOKIE", "SESSION_HOURS", "router", "template_config"]

COOKIE = "kontor_session"
SESSION_HOURS = 8
PAGE = 50
ROLES = frozenset({"accountant", "admin"})
HEADERS = HTML_HEADERS


# --- formatting in the business code's locale ---------------------------------------------------------
@cache
def locale_of(country: str) -> str:
    """The business code's locale: its country's (first) official language, e.g. DE -> de_DE, US -> en_US."""
    languages = get_official_languages(country, de_facto=True)
    return f"{languages[0]}_{country}" if languages else "en"


@dataclass(frozen=True)
class Formats:
    locale: str
    currency: str

    def amount(self, text: str | None, currency: str | None = None) -> str:
        """A wire amount ("-1234.50") as the locale writes it ("-1.234,50"); empty for none."""
        if text is None or text == "":
            return ""
        digits = currency_decimals(currency or self.currency)
        pattern = "#,##0." + "0" * digits if digits else "#,##0"
        return str(format_decimal(Decimal(text), format=pattern, locale=self.locale))

    def day(self, value: date | None) -> str:
        return "" if value is None else str(format_date(value, format="medium", locale=self.locale))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, undefined=StrictUndefined
    )
    env.globals["side_label"] = {"DEBIT": "Dr", "CREDIT": "Cr", "BALANCED": ""}
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine(engine_instance=_environment()))


# --- sessions -----------------------------------------------------------------------------------------
class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


@dataclass(frozen=True)
class Viewer:
    merchant_id: int
    key_id: int
    role: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _ctx(request: Request[Any, Any, Any]) -> Kontor:
    ctx: Kontor = request.app.state.kontor
    return ctx


def _session_key(token: str | None) -> tuple[int, bytes]:
    """The session's row key from the cookie "<merchant id>.<random token>" (the merchant id keeps every table
    keyed by merchant); anything else is no session."""
    merchant, _, secret = (token or "").partition(".")
    merchant_id = parse_ascii_int(merchant)
    if merchant_id is None or not 20 <= len(secret) <= 100:
        raise SignInRequired
    return merchant_id, _digest(token or "")


async def _viewer(request: Request[Any, Any, Any]) -> Viewer:
    merchant_id, digest = _session_key(request.cookies.get(COOKIE))
    row = await _ctx(request).pool.fetchrow(
        "SELECT s.merchant_id, s.key_id, k.role FROM web_sessions s JOIN api_keys k USING (merchant_id, key_id) "
        "WHERE s.merchant_id = $1 AND s.session_sha256 = $2 AND s.expires_at > now() AND k.revoked_at IS NULL",
        merchant_id,
        digest,
    )
    if row is None:
        raise SignInRequired
    return Viewer(merchant_id=row["merchant_id"], key_id=row["key_id"], role=row["role"])


async def _page(request: Request[Any, Any, Any], code: Code) -> tuple[Kontor, Business, Formats]:
    """The signed-in merchant's business code (404 for anyone else's), and how to write its amounts."""
    viewer = await _viewer(request)
    ctx = _ctx(request)
    business = await get_business(ctx, viewer.merchant_id, code)
    check_date_parameters(request)  # after the session and the business code: a visitor learns nothing
    return ctx, business, Formats(locale_of(business.country), business.currency)


def _render(name: str, status: int = 200, *, nav: str = "", **context: Any) -> Template:
    """A page; `nav` names the business code's page it belongs to (highlighted in the navigation)."""
    return Template(name, context={"nav": nav, **context}, status_code=status, headers=HEADERS)


def _session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path="/ui",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


class SignInForm(Struct, kw_only=True):
    key: str = ""
    next: str = ""


def _next_page(target: str) -> str:
    """Only a page of this site (no `//host`, no scheme): nothing else may be the target of the redirect."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


@get("/sign-in")
async def sign_in_form(next_page: Annotated[str, QueryParameter(name="next")] = "/ui/") -> Template:
    return _render("sign_in.html", error=None, next=_next_page(next_page))


def _cross_site(request: Request[Any, Any, Any]) -> bool:
    """True for a form another site made the browser post here (login CSRF: the victim would be signed in to
    the attacker's books). The browser says where a request comes from: Sec-Fetch-Site (W3C Fetch Metadata),
    else Origin (RFC 6454), compared with the Host it was sent to. A request with neither (curl, a script)
    cannot have been forged by a web page and is let through; SameSite cookies do not help here, because the
    attack sets a cookie rather than sending one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


@post("/sign-in", status_code=303)
async def sign_in(
    request: Request[Any, Any, Any],
    data: URLEncodedBody[SignInForm],
) -> Response[Any]:
    ctx = _ctx(request)
    target = _next_page(data.next)
    if _cross_site(request):
        return _render("sign_in.html", 403, error="Sign in on this site's own sign-in page.", next="/ui/")
    try:
        principal = await authenticate(ctx, data.key.strip())
    except Unauthorized:
        return _render("sign_in.html", 401, error="This key is not valid.", next=target)
    if principal.merchant_id is None or principal.key_id is None or principal.role not in ROLES:
        return _render("sign_in.html", 403, error="Sign in with an accountant or admin key.", next=target)
    token = f"{principal.merchant_id}.{secrets.token_urlsafe(32)}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO web_sessions (merchant_id, session_sha256, key_id, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
            principal.merchant_id,
            _digest(token),
            principal.key_id,
            SESSION_HOURS,
        )
    cookie = _session_cookie(request, token, SESSION_HOURS * 3600)
    return Redirect(target, status_code=303, cookies=[cookie], headers=HEADERS)


@post("/sign-out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    if _cross_site(request):  # another site may not end the session either
        return _render("error.html", 403, http_status=403, message="Sign out on this site's own pages.")
    try:
        merchant_id, digest = _session_key(request.cookies.get(COOKIE))
    except SignInRequired:
        pass
    else:
        await _ctx(request).pool.execute(
            "DELETE FROM web_sessions WHERE merchant_id = $1 AND session_sha256 = $2", merchant_id, digest
        )
    return Redirect("/ui/sign-in", status_code=303, cookies=[_session_cookie(request, "", 0)], headers=HEADERS)


# --- pages ---------------------------------------------------------------------------------------------
@get("/")
async def businesses(request: Request[Any, Any, Any]) -> Template:
    viewer = await _viewer(request)
    codes = await list_businesses(_ctx(request), viewer.merchant_id)
    return _render("businesses.html", businesses=codes, role=viewer.role)


@get("/{code:int}/trial-balance")
async def trial_balance(request: Request[Any, Any, Any], code: Code, as_of: FromQuery[date | None] = None) -> Template:
    ctx, business, fmt = await _page(request, code)
    report = await reports.trial_balance(ctx, business, as_of=as_of or ctx.today())
    notes = balance_notes(
        [{"currency": t.currency, "debit": t.debit, "credit": t.credit} for t in report.totals],
        lambda minor, currency: fmt.amount(format_amount(minor, currency), currency),
    )
    return _render("trial_balance.html", nav="trial-balance", business=business, fmt=fmt, report=report, notes=notes)


@get("/{code:int}/accounts/{number:str}/register")
async def register(
    request: Request[Any, Any, Any],
    code: Code,
    number: FromPath[str],
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    customer: FromQuery[str | None] = None,
    cursor: Cursor = None,
) -> Template:
    ctx, business, fmt = await _page(request, code)
    page = await reports.register(
        ctx,
        business,
        number,
        from_date=from_date,
        to_date=to_date,
        customer=customer or None,
        currency=None,
        cursor=cursor or None,
        limit=PAGE,
    )
    keep = {"from": from_date, "to": to_date, "customer": customer or None}
    query = {k: str(v) for k, v in keep.items() if v is not None}
    return _render(
        "register.html", nav="trial-balance", business=business, fmt=fmt, page=page, query=query, first=cursor is None
    )


class CustomerRow(Struct, kw_only=True):
    customer: str
    debit: str
    credit: str
    balance: str  # signed: what the customer owes (negative: what the merchant owes the customer)
    level: int


async def customer_balances(ctx: Kontor, business: Business, after: str, limit: int) -> list[CustomerRow]:
    """The business code's customers in name order, after `after`, with their balance and dunning level."""
    rows = await ctx.reports_pool.fetch(
        # the page's customers first, then their dunning level: the join never sees more than a page of rows
        "SELECT c.customer, c.debit, c.credit, COALESCE(d.level, 0) AS level FROM (SELECT customer, "
        "COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) AS debit, "
        "COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0) AS credit FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND customer IS NOT NULL AND customer > $3 AND currency = $4 "
        "GROUP BY customer ORDER BY customer LIMIT $5) c LEFT JOIN dunning_accounts d "
        "ON d.merchant_id = $1 AND d.business = $2 AND d.customer = c.customer ORDER BY c.customer",
        business.merchant_id,
        business.code,
        after,
        business.currency,
        limit,
    )
    cur = business.currency
    return [
        CustomerRow(
            customer=r["customer"],
            debit=format_amount(int(r["debit"]), cur),
            credit=format_amount(int(r["credit"]), cur),
            balance=format_amount(int(r["debit"] - r["credit"]), cur),
            level=r["level"],
        )
        for r in rows
    ]


@get("/{code:int}/customers")
async def customers(request: Request[Any, Any, Any], code: Code, after: FromQuery[str] = "") -> Template:
    ctx, business, fmt = await _page(request, code)
    rows = await customer_balances(ctx, business, after, PAGE + 1)
    next_after = rows[PAGE - 1].customer if len(rows) > PAGE else None
    return _render(
        "customers.html", nav="customers", business=business, fmt=fmt, rows=rows[:PAGE], next_after=next_after
    )


@get("/{code:int}/customers/{customer:str}")
async def customer(
    request: Request[Any, Any, Any], code: Code, customer: FromPath[str], as_of: FromQuery[date | None] = None
) -> Template:
    ctx, business, fmt = await _page(request, code)
    day = as_of or ctx.today()
    account = await reports.customer_account(ctx, business, customer, as_of=day)
    items = await customer_open_items(ctx, business, customer, day)
    return _render(
        "customer.html", nav="customers", business=business, fmt=fmt, account=account, items=items, as_of=day
    )


async def _in_dunning(ctx: Kontor, business: Business, today: date) -> list[asyncpg.Record]:
    return await ctx.reports_pool.fetch(
        "SELECT customer, level, last_notice_on, default_on, collection_status, "
        "CASE WHEN paused_until >= $3 THEN paused_until END AS paused_until FROM dunning_accounts "
        "WHERE merchant_id = $1 AND business = $2 AND (level > 0 OR collection_status IS NOT NULL "
        "OR paused_until >= $3) ORDER BY level DESC, customer LIMIT 500",
        business.merchant_id,
        business.code,
        today,
    )


@get("/{code:int}/dunning")
async def dunning(request: Request[Any, Any, Any], code: Code) -> Template:
    ctx, business, fmt = await _page(request, code)
    policy = await get_policy(ctx, business)
    runs = await list_runs(ctx, business, before=None, limit=10)
    accounts = await _in_dunning(ctx, business, ctx.today())
    return _render(
        "dunning.html", nav="dunning", business=business, fmt=fmt, policy=policy, runs=runs, accounts=accounts
    )


@get("/{code:int}/reconciliation")
async def reconciliation(
    request: Request[Any, Any, Any],
    code: Code,
    shown: Annotated[str, QueryParameter(name="state")] = "open",
    after: FromQuery[int] = 0,
) -> Template:
    if shown not in ("open", "resolved", "all"):
        raise BadRequest("query_parameter_invalid", "state is one of open, resolved, all")
    ctx, business, fmt = await _page(request, code)
    page = await list_exceptions(
        ctx, business, state=None if shown == "all" else shown, source=None, after=max(after, 0), limit=PAGE
    )
    return _render("reconciliation.html", nav="reconciliation", business=business, fmt=fmt, page=page, state=shown)


@get("/{code:int}/periods")
async def periods(request: Request[Any, Any, Any], code: Code) -> Template:
    ctx, business, fmt = await _page(request, code)
    closed = await journal.list_periods(ctx, business)
    return _render("periods.html", nav="periods", business=business, fmt=fmt, periods=list(reversed(closed)))


@get("/{code:int}/periods/{period:str}")
async def gl_report(request: Request[Any, Any, Any], code: Code, period: FromPath[str]) -> Template:
    ctx, business, fmt = await _page(request, code)
    report = await reports.gl_report(ctx, business, _month(period))
    return _render("gl_report.html", nav="periods", business=business, fmt=fmt, report=report)


@get("/{code:int}/periods/{period:str}/gl-report")
async def gl_download(
    request: Request[Any, Any, Any],
    code: Code,
    period: FromPath[str],
    file_format: Annotated[str, QueryParameter(name="format")] = "csv",
) -> Response[Any]:
    if file_format not in FILE_FORMATS:
        raise BadRequest("format_unknown", f"the G/L report downloads as {', '.join(FILE_FORMATS)}")
    ctx, business, _ = await _page(request, code)
    file = await gl_file(ctx, business, _month(period), file_format, created=ctx.clock())
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{file.name}"'}
    return Response(file.body, media_type=file.media_type, encoding=file.charset, headers=headers)


def _month(period: FromPath[str]) -> str:
    """Checked here, after the session, not by a path pattern: a visitor without a session learns nothing."""
    if len(period) != 7 or period[4] != "-" or not ascii_digits(period[:4] + period[5:]):
        raise BadRequest("period_invalid", "a period is a month: YYYY-MM")
    return period


# --- errors as pages -----------------------------------------------------------------------------------
def _to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/ui/"
    return Redirect("/ui/sign-in", query_params={"next": _next_page(target)}, status_code=303, headers=HEADERS)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, KontorError):
        status, message = exc.status, exc.detail
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:  # pragma: no cover - the app's handlers log and answer other errors
        raise exc
    return _render("error.html", status, http_status=status, message=message)


router = Router(
    path="/ui",
    route_handlers=[
        sign_in_form,
        sign_in,
        sign_out,
        businesses,
        trial_balance,
        register,
        customers,
        customer,
        dunning,
        reconciliation,
        periods,
        gl_report,
        gl_download,
    ],
    exception_handlers={SignInRequired: _to_sign_in, KontorError: _error_page, HTTPException: _error_page},
    include_in_schema=False,
)
