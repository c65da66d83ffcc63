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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from desk.formats import Formats, locale_of
from desk.i18n import Language, language_of
from desk.sheets import FILE_FORMATS, Column, Dialect, Sheet, sheet_file
from ledger.audit import acting
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Forbidden
from ledger.http.access import HTML_HEADERS
from ledger.http.inputs import check_date_parameters
from ledger.tenancy import Principal, get_business
from ledger.textsafe import parse_ascii_int

__all__ = [
    "COOKIE",
    "HEADERS",
    "PAGE",
    "PAGE_STATE",
    "ROLES",
    "SESSION_HOURS",
    "SignInRequired",
    "View",
    "Viewer",
    "check_csrf",
    "cross_site",
    "csrf_token",
    "ctx_of",
    "digest",
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
PAGE_STATE = "desk_page"  # request.state: (Viewer, Business) of the page asked for (`desk.errorpages`)


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
    known = request.state.get(PAGE_STATE)  # `before_page` found them already
    if isinstance(known, tuple) and known[1].code == code:
        viewer, business = known
    else:
        viewer = await viewer_of(request)
        business = await get_business(ctx_of(request), viewer.merchant_id, code)
    check_date_parameters(request)  # after the session and the business code: a visitor learns nothing
    fmt = Formats(locale_of(business.country), business.currency, Language.of(language_of(business.country)))
    return View(request, ctx_of(request), business, fmt, viewer)


def render(template_name: str, status: int = 200, /, *, nav: str = "", **context: Any) -> Template:
    """A page; `nav` names the business code's page it belongs to (highlighted in the navigation)."""
    return Template(template_name, context={"nav": nav, **context}, status_code=status, headers=HEADERS)
