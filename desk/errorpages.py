"""The pages' error pages: HTML in the business code's language (never a JSON problem in the browser).

`before_page` (the pages' before-request hook) finds the page's session and business code first, so that even
a query value refused before the handler runs gets its error page in that code's language; `error_page` writes
the status, the message and, for a bad query or path value, the field and the value given.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from desk.i18n import Language, language_of
from desk.webkit import COOKIE, PAGE_STATE, SignInRequired, ctx_of, digest, render, viewer_of
from ledger.errors import KontorError
from ledger.http.inputs import before_request as app_before_request
from ledger.tenancy import get_business
from ledger.textsafe import parse_ascii_int

__all__ = ["CODE_MESSAGES", "QUERY_LABELS", "STATUS_TITLES", "before_page", "error_language", "error_page"]


# --- error pages ---------------------------------------------------------------------------------------
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
    request.state[PAGE_STATE] = (viewer, business)
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
    known = request.state.get(PAGE_STATE)
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
