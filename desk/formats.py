"""Writing and reading amounts and dates as the business code's locale does (pure: no I/O).

`locale_of` picks the locale from the country, `Formats` writes amounts, dates and table cells in it (Babel's
CLDR data), and `parse_local_amount` reads an amount typed into a form the same way, refusing one that could
be read two ways (`AmountTextError`, whose `reason` the page translates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from babel.dates import format_date
from babel.languages import get_official_languages
from babel.numbers import get_decimal_symbol, get_group_symbol, get_minus_sign_symbol
from markupsafe import Markup, escape

from desk.i18n import Language
from desk.sheets import Cell, Column
from ledger.money import AmountError, currency_decimals, parse_amount

__all__ = ["AmountTextError", "Formats", "locale_of", "parse_local_amount", "signed_minor"]


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
        # grouped by threes here: Babel's pattern formatting leaves de_CH/fr_CH/it_CH millions ungrouped
        # ("1234567.89") and groups ten-digit amounts once ("1234567'890.00"); the forms read every group
        digits = currency_decimals(currency or self.currency)
        value = Decimal(text)
        whole, _, fraction = f"{abs(value):.{digits}f}".partition(".")
        groups = [whole[max(0, end - 3) : end] for end in range(len(whole), 0, -3)][::-1]
        written = get_group_symbol(self.locale).join(groups)
        if digits:
            written += get_decimal_symbol(self.locale) + fraction
        return (get_minus_sign_symbol(self.locale) if value < 0 else "") + written

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


def signed_minor(text: str, currency: str) -> int:
    """A signed decimal string of the API ("-5.00") in minor units."""
    negative = text.startswith("-")
    minor = parse_amount(text[1:] if negative else text, currency, allow_zero=True)
    return -minor if negative else minor
