"""What every web page uses: the session, the CSRF token of its forms, the business code's language and
number format, and tables that render as HTML and download as CSV or XLSX.

Sessions are server-side: the cookie carries "<merchant id>.<random token>" (HttpOnly, SameSite=Lax, Secure
over HTTPS, path /ui), the database keeps only its SHA-256 with the key it was opened with, so a session ends
when it expires, when the accountant signs out, or when the key is revoked.

Forms that change the books carry a CSRF token (OWASP "synchronizer token"): HMAC-SHA256 of the session's
secret cookie value, so it is per session, never stored, and unknown to another site, which can neither read
the HttpOnly cookie nor a page of this site. A POST is refused (403) unless its hidden `csrf` field is the
session's token, and also when the browser says it comes from another site (`cross_site`).
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from babel.dates import format_date
from babel.languages import get_official_languages
from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from markupsafe import Markup, escape

from desk.i18n import Language, language_of
from desk.sheets import FILE_FORMATS, Cell, Column, Dialect, Sheet, sheet_file
from ledger.audit import acting
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Forbidden
from ledger.http.access import HTML_HEADERS
from ledger.http.inputs import check_date_parameters
from ledger.money import currency_decimals
from ledger.tenancy import Principal, get_business
from ledger.textsafe import parse_ascii_int

__all__ = [
    "COOKIE",
    "HEADERS",
    "PAGE",
    "ROLES",
    "SESSION_HOURS",
    "Formats",
    "SignInRequired",
    "View",
    "Viewer",
    "check_csrf",
    "cross_site",
    "csrf_token",
    "ctx_of",
    "digest",
    "locale_of",
    "open_page",
    "render",
    "session_cookie",
    "session_key",
    "template_config",
    "viewer_of",
]

COOKIE = "kontor_session"
SESSION_HOURS = 8
PAGE = 50
EXPORT_ROWS = 10_000  # a download of a paged table holds up to this many rows
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
    lang: Language = field(default_factory=lambda: Language.of("en"))

    def amount(self, text: str | None, currency: str | None = None) -> str:
        """A wire amount ("-1234.50") as the locale writes it ("-1.234,50"); empty for none."""
        if text is None or text == "":
            return ""
        digits = currency_decimals(currency or self.currency)
        pattern = "#,##0." + "0" * digits if digits else "#,##0"
        return str(format_decimal(Decimal(text), format=pattern, locale=self.locale))

    def day(self, value: date | None) -> str:
        return "" if value is None else str(format_date(value, format="medium", locale=self.locale))

    def moment(self, value: datetime | None) -> str:
        return "" if value is None else f"{self.day(value.date())} {value:%H:%M} UTC"

    def show(self, value: Any, kind: str, currency: str | None = None) -> str:
        if value is None or value == "":
            return ""
        if kind == "amount":
            return self.amount(str(value), currency)
        if isinstance(value, datetime):
            return self.moment(value)
        if isinstance(value, date):
            return self.day(value)
        return str(value)

    def td(self, cell: Cell, column: Column) -> Markup:
        """One table cell: amounts right-aligned with their wire value in data-amount."""
        classes = ["num"] if column.kind in ("amount", "int") else []
        attrs = dict(cell.attrs)
        if "class" in attrs:
            classes.append(attrs.pop("class"))
        parts = Markup("")
        if classes:
            parts += Markup(' class="{}"').format(" ".join(classes))
        if column.kind == "amount":
            parts += Markup(' data-amount="{}"').format("" if cell.value is None else cell.value)
        for name, value in attrs.items():
            parts += Markup(' {}="{}"').format(name, value)
        text = cell.display if cell.display is not None else self.show(cell.value, column.kind, cell.currency)
        inner = Markup('<a href="{}">{}</a>').format(cell.href, text) if cell.href else escape(text)
        return Markup("<td{}>{}</td>").format(parts, inner)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, undefined=StrictUndefined
    )
    env.globals["side_label"] = {"DEBIT": "Dr", "CREDIT": "Cr", "BALANCED": ""}
    env.globals["_"] = Language.of("en")._  # pages of a business code pass their own language's
    env.filters["query"] = lambda params: urlencode({k: v for k, v in params.items() if v not in (None, "")})
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
    key_name: str
    csrf: str  # the session's CSRF token


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session: str) -> str:
    """The CSRF token of the session whose cookie value is `session`."""
    return hmac.new(session.encode(), b"kontor-csrf-v1", hashlib.sha256).hexdigest()


def ctx_of(request: Request[Any, Any, Any]) -> Kontor:
    ctx: Kontor = request.app.state.kontor
    return ctx


def session_key(token: str | None) -> tuple[int, bytes]:
    """The session's row key from the cookie "<merchant id>.<random token>" (the merchant id keeps every table
    keyed by merchant); anything else is no session."""
    merchant, _, secret = (token or "").partition(".")
    merchant_id = parse_ascii_int(merchant)
    if merchant_id is None or not 20 <= len(secret) <= 100:
        raise SignInRequired
    return merchant_id, digest(token or "")


async def viewer_of(request: Request[Any, Any, Any]) -> Viewer:
    token = request.cookies.get(COOKIE)
    merchant_id, key = session_key(token)
    row = await ctx_of(request).pool.fetchrow(
        "SELECT s.merchant_id, s.key_id, k.role, k.name FROM web_sessions s JOIN api_keys k USING (merchant_id, key_id) "
        "WHERE s.merchant_id = $1 AND s.session_sha256 = $2 AND s.expires_at > now() AND k.revoked_at IS NULL",
        merchant_id,
        key,
    )
    if row is None:
        raise SignInRequired
    return Viewer(
        merchant_id=row["merchant_id"],
        key_id=row["key_id"],
        role=row["role"],
        key_name=row["name"],
        csrf=csrf_token(token or ""),
    )


def cross_site(request: Request[Any, Any, Any]) -> bool:
    """True for a form another site made the browser post here. The browser says where a request comes from:
    Sec-Fetch-Site (W3C Fetch Metadata), else Origin (RFC 6454), compared with the Host it was sent to. A
    request with neither (curl, a script) cannot have been forged by a web page and is let through; SameSite
    cookies do not help against login CSRF, because the attack sets a cookie rather than sending one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def check_csrf(request: Request[Any, Any, Any], viewer: Viewer, token: str) -> None:
    """403 unless the form carries the session's CSRF token and does not come from another site."""
    if cross_site(request) or not hmac.compare_digest(token.encode(), viewer.csrf.encode()):
        raise Forbidden("csrf_token_invalid", "This form has expired or was not sent from this site: reload the page.")


def session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path="/ui",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# --- pages ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """A signed-in page of a business code: who looks, at which books, in which language."""

    request: Request[Any, Any, Any]
    ctx: Kontor
    business: Business
    fmt: Formats
    viewer: Viewer

    def acting(self) -> AbstractContextManager[None]:
        """What the forms do is done as the signed-in key (the audit trail: `ledger.audit`)."""
        viewer = self.viewer
        return acting(Principal(viewer.merchant_id, viewer.key_id, viewer.role, viewer.key_name))

    @property
    def lang(self) -> Language:
        return self.fmt.lang

    @property
    def downloading(self) -> bool:
        return "format" in self.request.query_params

    @property
    def rows(self) -> int:
        """How many rows a paged table reads: a page on screen, EXPORT_ROWS for a download."""
        return EXPORT_ROWS if self.downloading else PAGE

    def sheet(self, id: str, title: str, columns: list[tuple[str, str]], empty: str = "") -> Sheet:
        """A table whose column labels (and title, empty text) are translated."""
        _ = self.lang._
        return Sheet(
            id,
            _(title) if title else "",
            [Column(_(label), kind) for label, kind in columns],  # type: ignore[arg-type]
            empty=_(empty) if empty else "",
            currency=self.business.currency,
        )

    def respond(self, template: str, nav: str, sheets: list[Sheet], **context: Any) -> Response[Any]:
        """The page; or, with ?format=csv|xlsx&table=<id>, that table as a file."""
        query = dict(self.request.query_params)
        if self.downloading:
            file_format, table = query.get("format", ""), query.get("table", "")
            if file_format not in FILE_FORMATS:
                raise BadRequest("format_unknown", f"tables download as {', '.join(FILE_FORMATS)}")
            sheet = next((s for s in sheets if s.id == table), None)
            if sheet is None:
                raise BadRequest("table_unknown", f"this page's tables are {', '.join(s.id for s in sheets)}")
            file = sheet_file(sheet, file_format, Dialect.of(self.lang.code), f"{self.business.code}-{sheet.id}")
            headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{file.name}"'}
            return Response(file.body, media_type=file.media_type, headers=headers)
        keep = {k: v for k, v in query.items() if k not in ("format", "table")}
        return render(
            template,
            nav=nav,
            business=self.business,
            fmt=self.fmt,
            _=self.lang._,
            lang=self.lang,
            sheets={s.id: s for s in sheets},
            query=keep,
            csrf=self.viewer.csrf,
            viewer=self.viewer,
            **context,
        )


async def open_page(request: Request[Any, Any, Any], code: int) -> View:
    """The signed-in merchant's business code (404 for anyone else's), and how to write its pages."""
    viewer = await viewer_of(request)
    ctx = ctx_of(request)
    business = await get_business(ctx, viewer.merchant_id, code)
    check_date_parameters(request)  # after the session and the business code: a visitor learns nothing
    fmt = Formats(locale_of(business.country), business.currency, Language.of(language_of(business.country)))
    return View(request, ctx, business, fmt, viewer)


def render(template_name: str, status: int = 200, /, *, nav: str = "", **context: Any) -> Template:
    """A page; `nav` names the business code's page it belongs to (highlighted in the navigation)."""
    return Template(template_name, context={"nav": nav, **context}, status_code=status, headers=HEADERS)
