"""Exact money: integer minor units inside, decimal strings on the wire.

Why this module exists: every amount that enters or leaves Kontor passes through `parse_amount` and
`format_amount`, so there is exactly one place that knows a currency's decimals (ISO 4217, taken from
py-moneyed's metadata) and one place that rounds. Nothing here uses float, and nothing rounds silently:
an amount with more decimals than its currency has is an error (`1.001 EUR`), never rounded.

Rounding is explicit half-up (commercial rounding, as VAT law requires) and happens only in
`vat_from_gross`; splitting uses the largest-remainder method so the parts always add up to the whole.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache

import moneyed

from ledger.errors import FieldError, Unprocessable

__all__ = [
    "ACCOUNT_TOTAL_MINOR_MAX",
    "AMOUNT_MINOR_MAX",
    "AmountError",
    "allocate",
    "currency_decimals",
    "format_amount",
    "imbalance",
    "is_known_currency",
    "minor_per_unit",
    "parse_amount",
    "parse_amount_field",
    "vat_from_gross",
]

# 10^15 minor units per amount (10 trillion EUR); schema.sql enforces the same bound on lines.
AMOUNT_MINOR_MAX = 10**15
# 9 x 10^15 minor units (90 trillion EUR): what an account's debits, and its credits, may add up to in one
# currency over its whole history (schema.sql, kontor_post_entries: 422 account_total_exceeded beyond). Below
# 2^53, so every account figure is exact as a spreadsheet's double, and no sum a report makes per account or
# customer can overflow PostgreSQL's bigint.
ACCOUNT_TOTAL_MINOR_MAX = 9 * 10**15

# ISO 4217 codes that are not money a merchant can be paid in: metals, funds units, testing codes.
_NOT_MONEY = frozenset(
    {
        "XAU",
        "XAG",
        "XPT",
        "XPD",
        "XTS",
        "XXX",
        "XDR",
        "XBA",
        "XBB",
        "XBC",
        "XBD",
        "XSU",
        "XUA",
        "CLF",
        "BOV",
        "CHE",
        "CHW",
        "COU",
        "MXV",
        "USN",
        "USS",
        "UYI",
        "UYW",
    }
)
_HALF_UP = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP, traps=[decimal.InvalidOperation])


class AmountError(ValueError):
    """An amount that cannot be represented exactly in its currency (the message says why)."""


@cache
def currency_decimals(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (EUR 2, JPY 0, BHD 3)."""
    if not is_known_currency(currency):
        raise AmountError(f"unknown currency {currency!r}")
    sub_unit = int(moneyed.get_currency(currency).sub_unit)
    return len(str(sub_unit)) - 1


@cache
def is_known_currency(currency: str) -> bool:
    """True for an ISO 4217 currency code that merchants can hold (not metals or test codes)."""
    if len(currency) != 3 or not currency.isascii() or not currency.isupper() or currency in _NOT_MONEY:
        return False
    try:
        sub_unit = int(moneyed.get_currency(currency).sub_unit)
    except moneyed.CurrencyDoesNotExist:
        return False
    return sub_unit in (1, 10, 100, 1000, 10000)


_SCALE = (1, 10, 100, 1_000, 10_000)  # 10 ** decimals for the decimals ISO 4217 currencies have


def parse_amount(text: str, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a decimal string such as ``"119.00"`` into minor units of `currency`.

    Accepts plain decimal notation only (ASCII digits and one point: no sign, exponent, NaN or
    Infinity); trailing zeros beyond the currency's decimals are fine (``"1.100"`` EUR is 110), other
    extra digits are an error. Integer arithmetic only: exact, and fast on the posting path.
    """
    whole, point, fraction = text.partition(".")
    if not whole or len(text) > 40 or not text.isascii() or not whole.isdigit() or (point and not fraction.isdigit()):
        raise AmountError(f"{text!r} is not a plain decimal amount such as '119.00'")
    decimals = currency_decimals(currency)
    fraction = fraction.rstrip("0")
    if len(fraction) > decimals:
        raise AmountError(f"{text} has more than {decimals} decimals, the precision of {currency}")
    minor = int(whole) * _SCALE[decimals] + (int(fraction) * _SCALE[decimals - len(fraction)] if fraction else 0)
    if minor == 0 and not allow_zero:
        raise AmountError("amount must be greater than zero")
    if minor > AMOUNT_MINOR_MAX:
        raise AmountError(f"amount exceeds the maximum of {format_amount(AMOUNT_MINOR_MAX, currency)}")
    return minor


def parse_amount_field(text: str, currency: str, field: str, *, allow_zero: bool = False) -> int:
    """parse_amount for a request field: an invalid amount is a 422 naming the field."""
    try:
        return parse_amount(text, currency, allow_zero=allow_zero)
    except AmountError as exc:
        raise Unprocessable("amount_invalid", f"{field}: {exc}", [FieldError(field, str(exc))]) from exc


def minor_per_unit(currency: str) -> int:
    """Minor units in one unit of the currency: EUR 100, JPY 1, BHD 1000."""
    return _SCALE[currency_decimals(currency)]


def format_amount(minor: int, currency: str) -> str:
    """Format minor units as the wire's decimal string: 11900 EUR -> '119.00', -5 JPY -> '-5'."""
    decimals = currency_decimals(currency)
    if decimals == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def imbalance(
    debit_minor: int,
    credit_minor: int,
    currency: str,
    names: tuple[str, str] = ("debits", "credits"),
    amount_text: Callable[[int, str], str] = format_amount,
) -> str:
    """How two sides that should agree differ, in words and a positive amount: "credits exceed debits by 0.10"
    (never "debits exceed credits by -0.10"); "" when they agree. `names` names the two sides (debit first);
    `amount_text` writes the amount (a page writes it in its locale)."""
    difference = debit_minor - credit_minor
    if difference == 0:
        return ""
    larger, smaller = names if difference > 0 else names[::-1]
    return f"{larger} exceed {smaller} by {amount_text(abs(difference), currency)}"


def vat_from_gross(gross_minor: int, rate_percent: Decimal) -> int:
    """Tax contained in a gross amount: gross x r / (100 + r), rounded half-up to the minor unit.

    The net part is ``gross - tax``, so net and tax always add up to the gross exactly.
    """
    if rate_percent < 0:
        raise AmountError("VAT rate must not be negative")
    if gross_minor < 0:
        return -vat_from_gross(-gross_minor, rate_percent)
    tax = _HALF_UP.divide(_HALF_UP.multiply(Decimal(gross_minor), rate_percent), 100 + rate_percent)
    return int(tax.quantize(Decimal(1), context=_HALF_UP))


def allocate(total_minor: int, weights: Sequence[int]) -> list[int]:
    """Split `total_minor` in proportion to non-negative integer `weights`, losing no minor unit.

    Largest-remainder method: every part gets the floor of its exact share, and the units left over go
    to the parts with the largest remainders (ties: the earlier part). The parts sum to the total.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    sign = -1 if total_minor < 0 else 1
    total = abs(total_minor)
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [sign * part for part in floors]
