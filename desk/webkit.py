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
import re
from collections import OrderedDict
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
from babel.numbers import format_decimal, get_decimal_symbol, get_group_symbol
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from markupsafe import Markup, escape

from desk.i18n import Language, language_of
from desk.sheets import FILE_FORMATS, Cell, Column, Dialect, Sheet, sheet_file
from ledger.audit import acting
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Forbidden, KontorError
from ledger.http.access import HTML_HEADERS
from ledger.http.inputs import before_request as app_before_request
from ledger.http.inputs import check_date_parameters
from ledger.money import AmountError, currency_decimals, parse_amount
from ledger.tenancy import Principal, get_business
from ledger.textsafe import parse_ascii_int

__all__ = [
    "COOKIE",
    "HEADERS",
    "PAGE",
    "ROLES",
    "SESSION_HOURS",
    "AmountTextError",
    "Formats",
    "SignInRequired",
    "View",
    "Viewer",
    "before_page",
    "check_csrf",
    "cross_site",
    "csrf_token",
    "ctx_of",
    "digest",
    "error_page",
    "locale_of",
    "open_page",
    "parse_local_amount",
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

    def example(self) -> tuple[str, str]:
        """An amount as a form takes it, with and without thousands separators: ("1.234,56", "1234,56")."""
        grouped = self.amount("1234.56")
        return grouped, grouped.replace(get_group_symbol(self.locale), "")

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


# --- amounts typed into a form ------------------------------------------------------------------------
class AmountTextError(ValueError):
    """A typed amount that is not one the page's locale writes; `reason` is an English label to translate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_SPACES = {" ", "\u00a0", "\u202f"}  # a typed space stands for a locale's (narrow) no-break space
_SYMBOLS = "0123456789"


def parse_local_amount(text: str, locale: str, currency: str) -> str:
    """A positive amount typed into a form, as the page's locale writes it, as the wire's decimal string:
    de_DE "1.500" -> "1500.00", "1.000,50" -> "1000.50", "0,5" -> "0.50"; en "1,500.00" -> "1500.00".

    The locale's decimal and group symbols come from CLDR (Babel). Group symbols are optional, but where used
    they must group the digits by three (1.234.567), so "1.50" on a German page or "1,50" on an English one is
    refused rather than guessed. More decimals than the currency has are refused too, because "1.500" on an
    English page (or "1,500" on a German one) most likely means fifteen hundred written the other way.
    Exact (no float): the digits are handed to `ledger.money.parse_amount`.

    Raises AmountTextError(reason) with an English reason for anything else (sign, letters, two decimal
    symbols, misplaced group symbols, zero, too many decimals, too large)."""
    decimal, group = get_decimal_symbol(locale), get_group_symbol(locale)
    groups = {group} | (_SPACES if group in _SPACES else set()) | ({"\u2019"} if group == "'" else set())
    typed = text.strip()
    if not typed:
        raise AmountTextError("empty")
    if typed[0] in "+-\u2212":
        raise AmountTextError("sign")
    if len(typed) > 40 or any(ch not in _SYMBOLS and ch != decimal and ch not in groups for ch in typed):
        raise AmountTextError("not an amount")
    whole, point, fraction = typed.partition(decimal)
    if decimal in fraction or any(ch in groups for ch in fraction):
        raise AmountTextError("not an amount")
    if not whole or (point and not fraction):
        raise AmountTextError("not an amount")
    parts = [whole]
    for g in groups:
        parts = [piece for part in parts for piece in part.split(g)]
    if len(parts) > 1 and (not 1 <= len(parts[0]) <= 3 or any(len(x) != 3 for x in parts[1:])):
        raise AmountTextError("digit groups")
    digits = currency_decimals(currency)
    if len(fraction) > digits:
        raise AmountTextError("too many decimals")
    try:
        minor = parse_amount("".join(parts) + (f".{fraction}" if fraction else ""), currency)
    except AmountError as exc:
        raise AmountTextError("zero" if "greater than zero" in str(exc) else "too large") from None
    whole_units, rest = divmod(minor, 10**digits)
    return f"{whole_units}.{rest:0{digits}d}" if digits else str(whole_units)


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
    Sec-Fetch-Site (W3C Fetch Metadata), else Origin (RFC 6454), else Referer, compared with the Host it was sent
    to. A request with none of them (curl, a script) cannot have been forged by a web page and is let through; SameSite
    cookies do not help against login CSRF, because the attack sets a cookie rather than sending one."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == "null" or urlsplit(origin).netloc.lower() != host
    referer = request.headers.get("referer")  # older browsers send only this on a cross-site form post
    return referer is not None and urlsplit(referer).netloc.lower() != host


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
    known = request.state.get(_PAGE)  # `before_page` found them already
    if isinstance(known, tuple) and known[1].code == code:
        viewer, business = known
    else:
        viewer = await viewer_of(request)
        business = await get_business(ctx_of(request), viewer.merchant_id, code)
    check_date_parameters(request)  # after the session and the business code: a visitor learns nothing
    fmt = Formats(locale_of(business.country), business.currency, Language.of(language_of(business.country)))
    return View(request, ctx_of(request), business, fmt, viewer)


# --- error pages ---------------------------------------------------------------------------------------
_PAGE = "desk_page"  # request.state: (Viewer, Business) of the page asked for
_LANGUAGE = "desk_language"  # request.state: the code ("de", "en") its error page is written in
_SEEN: OrderedDict[tuple[bytes, int], str] = OrderedDict()  # (session digest, business code) -> language
_SEEN_MAX = 10_000


async def before_page(request: Request[Any, Any, Any]) -> None:
    """Before-request hook of the pages: the app's own (`ledger.http.inputs.before_request`), then the session and
    business code of the page, so that an error page, even for a bad query value that fails before the page
    handler runs, is written in the business code's language. Finds nothing without a valid session."""
    await app_before_request(request)
    code = request.path_params.get("code")
    if not isinstance(code, int) or not 1000 <= code <= 9999:
        return
    try:
        viewer = await viewer_of(request)
        business = await get_business(ctx_of(request), viewer.merchant_id, code)
    except (SignInRequired, KontorError):
        return
    request.state[_PAGE] = (viewer, business)
    language = language_of(business.country)
    request.state[_LANGUAGE] = language
    key = (digest(request.cookies.get(COOKIE) or ""), code)
    _SEEN[key] = language
    _SEEN.move_to_end(key)
    while len(_SEEN) > _SEEN_MAX:
        _SEEN.popitem(last=False)


def error_language(request: Request[Any, Any, Any]) -> Language:
    """An error page's language: the business code's when the page's session could be read (`before_page`);
    for a path no page has (no hook ran), the language this session last saw that business code in; else the
    browser's first choice of German or English (Accept-Language), else English."""
    known = request.state.get(_LANGUAGE)
    if isinstance(known, str):
        return Language.of(known)
    parts = request.url.path.split("/")
    code = parse_ascii_int(parts[2]) if len(parts) > 2 and parts[1] == "ui" else None
    token = request.cookies.get(COOKIE)
    if code is not None and token:
        seen = _SEEN.get((digest(token), code))
        if seen:
            return Language.of(seen)
    for choice in request.headers.get("accept-language", "").split(","):
        tag = choice.split(";")[0].strip().lower()[:2]
        if tag in ("de", "en"):
            return Language.of(tag)
    return Language.of("en")


STATUS_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    409: "Conflict",
    413: "Too large",
    422: "Cannot be done",
    429: "Too many requests",
}

# What an error of the layers below means, in a sentence the catalogue translates (their `detail` is English
# and may name internals); an error the pages raise is already written in the page's language.
CODE_MESSAGES = {
    "entry_not_found": "This entry does not exist in this business code.",
    "notice_not_found": "This dunning notice does not exist in this business code.",
    "order_not_found": "This order does not exist in this business code.",
    "customer_not_found": "This customer does not exist in this business code.",
    "business_not_found": "This business code does not exist, or it is not yours.",
    "settlement_not_found": "This settlement was not imported.",
    "statement_not_found": "This bank statement was not imported.",
    "exception_not_found": "This reconciliation exception does not exist.",
    "account_not_found": "This account does not exist in the chart of accounts.",
    "entry_already_reversed": "This entry has already been reversed.",
    "exception_closed": "This exception has already been resolved or dismissed.",
    "period_closed": "The month of this date is closed: date the entry in an open month.",
    "period_not_over": "This month is not over yet: it can be closed from the first day of the next month on.",
    "profile_missing": "Letters need the business profile (name, address, bank account): an admin sets it.",
    "csrf_token_invalid": "This form has expired or was not sent from this site: reload the page.",
    "idempotency_key_reused": "This form was already sent with other values: reload it and enter them again.",
    "cursor_invalid": "This page link is not one Kontor made: start again from the first page.",
    "date_out_of_range": "A date lies outside 1900-01-01 to 2999-12-31.",
    "date_beyond_horizon": "The date lies too far in the future.",
    "entry_invalid": "The entry is not valid: see the lines named below.",
    "entry_too_few_lines": "An entry needs at least two lines.",
    "line_customer_invalid": "A customer goes on lines of the receivables account, and only there.",
    "not_found": "There is no such page.",
    "method_not_allowed": "There is no such page.",
}

QUERY_LABELS = {
    "from": "From",
    "to": "To",
    "as_of": "As of",
    "year": "Year",
    "after": "Page",
    "cursor": "Page",
    "q": "Search",
    "state": "State",
    "sort": "Sort by",
    "format": "Format",
    "code": "Business code",
}


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The HTML error page of a page (never a JSON problem in the browser), in the page's language: a heading for
    the status, what went wrong in words, for a bad query or path value the field and the value given."""
    lang = error_language(request)
    _ = lang._
    fields: list[str] = []
    if isinstance(exc, KontorError):
        status = exc.status
        message = _(CODE_MESSAGES[exc.code]) if exc.code in CODE_MESSAGES else exc.detail
        fields = [f"{_field_label(lang, e.field)}: {e.message}" for e in exc.errors]
    elif isinstance(exc, ValidationException):
        status = 400
        message, fields = _("A value in the address of this page is not valid."), _invalid_values(request, exc, lang)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "")
        message = _(CODE_MESSAGES[code]) if code else str(exc.detail)
    else:  # pragma: no cover - the app's handlers log and answer other errors
        raise exc
    referer = urlsplit(request.headers.get("referer", "")) if request.method == "POST" else None
    back = referer.path + (f"?{referer.query}" if referer.query else "") if referer else None
    back = back if back and back.startswith("/ui/") and not back.startswith("//") else None
    title = _(STATUS_TITLES.get(status, "Error"))
    known = request.state.get(_PAGE)
    page = {"business": known[1]} if isinstance(known, tuple) else {}  # its navigation, when signed in to it
    return render(
        "error.html", status, http_status=status, title=title, message=message, fields=fields, back=back,
        lang=lang, _=_, **page,
    )  # fmt: skip


def _field_label(lang: Language, path: str) -> str:
    """A field of a form's entry as the form numbers it: "lines[0].debit" -> "Line 1, debit" (the API's path
    counts from 0, the form's lines from 1)."""
    m = re.fullmatch(r"lines\[(\d+)\](?:\.(\w+))?", path)
    if m is None:
        return path
    line = lang._("Line {n}").format(n=int(m.group(1)) + 1)
    return f"{line}, {lang._(m.group(2))}" if m.group(2) else line


_ALIASES = {"from_date": "from", "to_date": "to", "shown": "state", "file_format": "format", "next_page": "next"}


def _invalid_values(request: Request[Any, Any, Any], exc: ValidationException, lang: Language) -> list[str]:
    """ "From: “2026-13-01” is not valid (a date is written YYYY-MM-DD)" for each query or path value refused."""
    out = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key = str(item.get("key", "")) if isinstance(item, dict) else ""
        if not key:
            continue
        key = _ALIASES.get(key, key)  # Litestar names the handler's parameter, the address its alias
        given = request.query_params.get(key, request.path_params.get(key, ""))
        label = lang._(QUERY_LABELS[key]) if key in QUERY_LABELS else key
        hint = lang._("a date is written YYYY-MM-DD") if key in ("from", "to", "as_of") else lang._("see the form")
        text = lang._("{field}: “{value}” is not valid ({hint}).")
        out.append(text.format(field=label, value=str(given)[:100], hint=hint))
    return out or [lang._("The address of this page has a value that is not valid.")]


def render(template_name: str, status: int = 200, /, *, nav: str = "", **context: Any) -> Template:
    """A page; `nav` names the business code's page it belongs to (highlighted in the navigation)."""
    return Template(template_name, context={"nav": nav, **context}, status_code=status, headers=HEADERS)
