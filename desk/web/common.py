"""The pages' shared helpers: links, amounts with their side, messages in the page's language, and the
forms' fields (reason, date, amount typed in the page's locale) and ids in a page's path.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.params import QueryParameter

from desk.formats import AmountTextError, parse_local_amount
from desk.sheets import Cell
from desk.webkit import View
from ledger.errors import BadRequest, NotFound, Unprocessable
from ledger.http.deps import ID_MAX
from ledger.money import currency_decimals, format_amount
from ledger.textsafe import ascii_digits, parse_ascii_int

__all__ = [
    "AMOUNT_REASONS",
    "REASON_MAX",
    "After",
    "checked_month",
    "form_amount",
    "form_date",
    "form_reason",
    "money_text",
    "page_url",
    "path_id",
    "read_form",
    "request_sha",
    "say",
    "signed_cell",
    "year_range",
]


After = Annotated[int, QueryParameter(ge=0, le=ID_MAX)]  # keyset position: an id, or 0 for the first page
REASON_MAX = 300


# --- helpers -------------------------------------------------------------------------------------------
def page_url(v: View, path: str) -> str:
    return f"/ui/{v.business.code}/{path}"


def signed_cell(v: View, value: str | None, side: str) -> Cell:
    """An absolute amount with its side: the signed value (debit +) downloads, "1.234,50 S" shows."""
    amount = value or "0"
    signed = f"-{amount}" if side == "CREDIT" and Decimal(amount) else amount
    shown = f"{v.fmt.amount(amount)} {v.lang.side(side)}".strip()
    return Cell(signed, display=shown, attrs=(("class", "balance"), ("data-side", side)))


def money_text(v: View, minor: int) -> str:
    return format_amount(minor, v.business.currency)


def say(v: View, text: str, **values: Any) -> str:
    """A page's error message in the page's language (`text` is the catalogue's English)."""
    return v.lang._(text).format(**values)


def checked_month(v: View, period: str) -> str:
    """Checked here, after the session, not by a path pattern: a visitor without a session learns nothing."""
    if len(period) != 7 or period[4] != "-" or not ascii_digits(period[:4] + period[5:]):
        raise Unprocessable("period_invalid", say(v, "“{value}” is not a month: write YYYY-MM.",
                       value=period[:30]))  # fmt: skip
    return period


def year_range(v: View, year: int | None) -> tuple[int, date, date]:
    y = year or v.ctx.today().year
    if not 1900 <= y <= 2999:
        raise BadRequest("query_parameter_invalid", say(v, "Year: “{value}” is not a year from 1900 to 2999.",
                       value=y))  # fmt: skip
    return y, date(y, 1, 1), date(y, 12, 31)


def path_id(text: str, code: str, what: str) -> int:
    """An id in a page's path: 1 to 2^63-1 ASCII digits, else 404 `code` (like an id that does not exist), never
    a value the database cannot take. Checked by the page, after its session, not by a path pattern (a visitor
    without a session learns nothing, and /journal/abc is a page error, not an unknown route)."""
    number = parse_ascii_int(text, length_max=19)
    if number is None or not 1 <= number <= ID_MAX:
        raise NotFound(code, f"{what} {text[:30]} not found")
    return number


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.items():
        if isinstance(value, str):
            if len(value) > 2000:
                raise BadRequest("form_field_too_long", f"the field {key} is too long")
            out[key] = value.strip()
    return out


def form_reason(v: View, form: dict[str, str]) -> str:
    reason = form.get("reason", "")
    if not reason:
        raise Unprocessable("reason_required", say(v, "Give a reason: it is kept with what you do."))
    if len(reason) > REASON_MAX:
        raise Unprocessable("reason_too_long", say(v, "A reason has at most {n} characters.", n=REASON_MAX))
    return reason


def form_date(v: View, form: dict[str, str], name: str, label: str) -> date | None:
    text = form.get(name, "")
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Unprocessable("date_invalid", say(v, "{field}: “{value}” is not a date: write YYYY-MM-DD.",
                       field=v.lang._(label), value=text[:40])) from None  # fmt: skip
    if not date(1900, 1, 1) <= day <= date(2999, 12, 31):
        raise Unprocessable("date_out_of_range", say(v, "{field}: “{value}” lies outside 1900-01-01 to "
                       "2999-12-31.", field=v.lang._(label), value=text))  # fmt: skip
    return day


def form_amount(v: View, text: str, field: str) -> str | None:
    """An amount typed into a form field, read as the page's locale writes it (`parse_local_amount`): the wire's
    decimal string, None for an empty field; 422 `amount_invalid` naming the field and echoing what was typed."""
    if not text:
        return None
    try:
        return parse_local_amount(text, v.fmt.locale, v.business.currency)
    except AmountTextError as exc:
        why = AMOUNT_REASONS[exc.reason]
        example = v.fmt.example()[0]
        raise Unprocessable("amount_invalid", say(v, why, field=field, typed=text[:60], example=example,
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


def request_sha(request: Request[Any, Any, Any], body: Any) -> bytes:
    canonical = msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(f"POST {request.url.path}\n".encode() + canonical).digest()
