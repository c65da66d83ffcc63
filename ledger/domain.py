"""The ledger's pure core: accounts, entries and the rules every entry obeys.

Design overview. A business code (legal entity: country + currency) is one ledger. Its journal is a
sequence of immutable entries; each entry has two or more lines, each line debits or credits a positive
amount in integer minor units on one account, optionally for one customer (the debtor sub-ledger lives
on accounts flagged `customer_ledger`, the AR account of the template). An entry balances per currency:
debits equal credits in every currency it uses. Lines in a currency other than the business code's are
allowed for FX cases only, and balance on their own.

These rules are checked here, before anything reaches PostgreSQL, and again by schema.sql at commit
(pair assertions): a bug in one layer cannot book an unbalanced entry.

Nothing in this module does I/O or reads a clock; `today` comes in as an argument.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal, NamedTuple

import msgspec

from ledger.errors import Conflict, FieldError, Unprocessable, invariant
from ledger.money import imbalance

__all__ = [
    "CREDIT_NORMAL_TYPES",
    "DATE_MAX",
    "DATE_MIN",
    "LINES_PER_ENTRY_MAX",
    "Account",
    "AccountType",
    "Business",
    "EntryDraft",
    "HashedLine",
    "Horizon",
    "LineDraft",
    "Side",
    "check_balanced",
    "check_customers",
    "check_date",
    "content_sha256",
    "link_sha256",
    "month_end",
    "parse_period",
    "reversal_date",
    "reversal_of",
    "stored_content_sha256",
]

LINES_PER_ENTRY_MAX = 100
# Every business date Kontor takes (effective dates, document dates, as-of dates, periods) lies in this range:
# it is what entries.effective_date accepts (schema.sql CHECK), and dates computed from it (pay-by dates,
# interest periods, the day before a period) stay far inside what Python and PostgreSQL can represent.
DATE_MIN = date(1900, 1, 1)
DATE_MAX = date(2999, 12, 31)
AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
CREDIT_NORMAL_TYPES = frozenset({"liability", "equity", "revenue"})
_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")


class Side(StrEnum):
    DEBIT = "D"
    CREDIT = "C"

    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


@dataclass(frozen=True, slots=True)
class Business:
    """One business code of a merchant: its own ledger in one currency."""

    merchant_id: int
    code: int
    country: str
    currency: str
    chart: str
    vat_rates: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class Account:
    account_id: int
    number: str
    name: str
    type: AccountType
    role: str | None
    vat_rate: Decimal | None
    alt_number: str | None
    allow_negative: bool
    customer_ledger: bool

    @property
    def credit_normal(self) -> bool:
        """True when the account's balance normally sits on the credit side."""
        return self.type in CREDIT_NORMAL_TYPES


class LineDraft(NamedTuple):
    """One validated line (a NamedTuple: immutable, and cheap to build thousands of times per batch)."""

    account: Account
    side: Side
    amount_minor: int
    currency: str
    customer: str | None = None


class EntryDraft(NamedTuple):
    """An entry as validated, before the database gives it an id and a recording time."""

    effective_date: date
    description: str
    lines: tuple[LineDraft, ...]
    reference: str | None = None
    metadata: Mapping[str, str] | None = None
    reverses: int | None = None
    order_reference: str | None = None  # the order the entry belongs to; `reference` is its document number


def check_balanced(lines: Sequence[LineDraft], *, path: str = "lines") -> None:
    """Raise `Unprocessable` unless debits equal credits in every currency of `lines`."""
    if len(lines) < 2:
        raise Unprocessable(
            "entry_too_few_lines",
            "an entry needs at least two lines",
            [FieldError(path, "at least two lines are required")],
        )
    if len(lines) > LINES_PER_ENTRY_MAX:
        raise Unprocessable(
            "entry_too_many_lines",
            f"an entry has at most {LINES_PER_ENTRY_MAX} lines",
            [FieldError(path, f"at most {LINES_PER_ENTRY_MAX} lines are allowed")],
        )
    net: dict[str, int] = {}
    for line in lines:
        invariant(line.amount_minor > 0, "line amounts are positive")
        amount = line.amount_minor if line.side is Side.DEBIT else -line.amount_minor
        net[line.currency] = net.get(line.currency, 0) + amount
    unbalanced = sorted(currency for currency, total in net.items() if total != 0)
    if unbalanced:
        details = ", ".join(f"{c} {imbalance(max(net[c], 0), max(-net[c], 0), c)}" for c in unbalanced)
        raise Unprocessable(
            "entry_unbalanced",
            f"entry does not balance: {details}",
            [FieldError(path, f"debits and credits differ in {', '.join(unbalanced)}")],
        )


def check_customers(lines: Sequence[LineDraft], *, path: str = "lines") -> None:
    """Lines on a customer-ledger account name a customer; lines on other accounts do not."""
    errors: list[FieldError] = []
    for i, line in enumerate(lines):
        if line.account.customer_ledger and line.customer is None:
            errors.append(
                FieldError(
                    f"{path}[{i}].customer", f"account {line.account.number} is a customer ledger: name the customer"
                )
            )
        if not line.account.customer_ledger and line.customer is not None:
            errors.append(
                FieldError(f"{path}[{i}].customer", f"account {line.account.number} keeps no customer accounts")
            )
    if errors:
        raise Unprocessable("line_customer_invalid", "customers do not match the accounts' ledgers", errors)


def check_date(value: date, field: str) -> None:
    """Raise 422 `date_out_of_range` naming `field` unless DATE_MIN <= value <= DATE_MAX."""
    if not DATE_MIN <= value <= DATE_MAX:
        raise Unprocessable(
            "date_out_of_range",
            f"{field} {value.isoformat()} is outside the dates the ledger keeps "
            f"({DATE_MIN.isoformat()} to {DATE_MAX.isoformat()})",
            [FieldError(field, f"must be between {DATE_MIN.isoformat()} and {DATE_MAX.isoformat()}")],
        )


class Horizon(NamedTuple):
    """The latest effective date that may be booked: `today` + `days` (KONTOR_POSTING_HORIZON_DAYS), so that a
    mistyped year does not book into the far future."""

    today: date
    days: int

    @property
    def last(self) -> date:
        return date.fromordinal(min(self.today.toordinal() + self.days, DATE_MAX.toordinal()))

    def explain(self, value: date) -> str:
        return (
            f"{value.isoformat()} is after {self.last.isoformat()}, today ({self.today.isoformat()}) + "
            f"{self.days} days (KONTOR_POSTING_HORIZON_DAYS)"
        )

    def check(self, dated: Iterable[tuple[str, date]], what: str = "effective date") -> None:
        """422 `date_beyond_horizon` naming every (field, date) after `last` (up to 50)."""
        beyond = [(field, day) for field, day in dated if day > self.last]
        if beyond:
            raise Unprocessable(
                "date_beyond_horizon",
                f"{len(beyond)} {what}{'s' if len(beyond) > 1 else ''} after {self.last.isoformat()} "
                f"(today + {self.days} days, KONTOR_POSTING_HORIZON_DAYS); nothing was booked",
                [FieldError(field, self.explain(day)) for field, day in beyond[:50]],
            )


def reversal_date(original_date: date, given: date | None, today: date, closed_through: date | None = None) -> date:
    """The reversal's effective date: the one given, else the original's own date while its period is open
    (the mirror then cancels the entry in the same month, and every report of that month shows neither),
    else today (the first open day, should today lie in a closed period).

    A reversal dated before its original would show, in every balance between the two dates, the mirror of
    an entry that did not exist yet; so a given date before the original's is 422 `reversal_before_original`.
    A given date in a closed period is refused by the database (409 `period_closed`)."""
    if given is None:
        if closed_through is None or original_date > closed_through:
            return original_date
        first_open = date.fromordinal(closed_through.toordinal() + 1)
        return max(today, first_open)
    if given < original_date:
        raise Unprocessable(
            "reversal_before_original",
            f"a reversal cannot be dated before the entry it reverses ({original_date.isoformat()})",
            [FieldError("effective_date", f"must be on or after {original_date.isoformat()}")],
        )
    return given


_OWN_METADATA = ("reason", "posted_via")  # why and how an entry was posted: not copied to its reversal


def reversal_of(
    original: EntryDraft,
    *,
    entry_id: int,
    effective_date: date | None,
    today: date,
    description: str | None,
    reversed_already: bool,
    is_reversal: bool,
    closed_through: date | None = None,
    reason: str | None = None,
) -> EntryDraft:
    """The mirror entry of `original`: every line on the opposite side, linked back to it, dated by
    `reversal_date` (the date asked for, else the original's while its period is open, else today).

    Its metadata is the original's (what the entry is about: a bank line, an order's document, ...) without
    what said why and how the original was posted (`reason`, `posted_via`); `reason` is the reversal's own."""
    if reversed_already:
        raise Conflict("entry_already_reversed", f"entry {entry_id} has already been reversed")
    if is_reversal:
        raise Conflict("entry_is_reversal", f"entry {entry_id} is itself a reversal; post a new entry instead")
    day = reversal_date(original.effective_date, effective_date, today, closed_through)
    lines = tuple(
        LineDraft(
            account=line.account,
            side=line.side.opposite(),
            amount_minor=line.amount_minor,
            currency=line.currency,
            customer=line.customer,
        )
        for line in original.lines
    )
    return EntryDraft(
        effective_date=day,
        description=description or f"Reversal of entry {entry_id}: {original.description}"[:500],
        lines=lines,
        reference=original.reference,
        metadata={k: v for k, v in (original.metadata or {}).items() if k not in _OWN_METADATA}
        | ({"reason": reason} if reason else {}),
        reverses=entry_id,
        order_reference=original.order_reference,
    )


_encoder = msgspec.json.Encoder()


HashedLine = tuple[int, str | None, str, int, str]  # account id, customer, side, minor units, currency


def content_sha256(merchant_id: int, business: int, draft: EntryDraft) -> bytes:
    """SHA-256 over an entry's business content (what the hash chain protects)."""
    lines = [
        (line.account.account_id, line.customer, str(line.side), line.amount_minor, line.currency)
        for line in draft.lines
    ]
    return stored_content_sha256(merchant_id, business, draft, lines)


def stored_content_sha256(merchant_id: int, business: int, draft: EntryDraft, lines: Sequence[HashedLine]) -> bytes:
    """The content hash from stored values: `verify` recomputes it from the rows and compares.

    Canonical form: a JSON array of fixed layout; metadata sorted by key; lines numbered in order.
    The draft's own lines are ignored here; `lines` are used instead. An entry with an order reference
    hashes layout 2 (layout 1 plus the order reference), so the hashes of entries without one are unchanged.
    """
    metadata = sorted((draft.metadata or {}).items())
    payload = [
        1,
        merchant_id,
        business,
        draft.effective_date.isoformat(),
        draft.description,
        draft.reference,
        metadata,
        draft.reverses,
        [[i + 1, *line] for i, line in enumerate(lines)],
    ]
    if draft.order_reference is not None:
        payload[0] = 2
        payload.append(draft.order_reference)
    return hashlib.sha256(_encoder.encode(payload)).digest()


def link_sha256(previous: bytes, entry_id: int, recorded_at_us: int, content: bytes) -> bytes:
    """One link of a business code's hash chain: H(previous link || entry id || recording time || content)."""
    return hashlib.sha256(
        previous + entry_id.to_bytes(8, "big") + recorded_at_us.to_bytes(8, "big", signed=True) + content
    ).digest()


def parse_period(text: str) -> date:
    """'2026-11' -> date(2026, 11, 1): ASCII digits, a month from 1900-01 to 2999-12; else 422 `period_invalid`."""
    match = _PERIOD.fullmatch(text)
    if match is None or not 1 <= int(match[2]) <= 12 or not DATE_MIN.year <= int(match[1]) <= DATE_MAX.year:
        raise Unprocessable(
            "period_invalid",
            f"{text!r} is not a period; use YYYY-MM, from {DATE_MIN:%Y-%m} to {DATE_MAX:%Y-%m}",
            [FieldError("period", f"expected YYYY-MM between {DATE_MIN:%Y-%m} and {DATE_MAX:%Y-%m}")],
        )
    return date(int(match[1]), int(match[2]), 1)


def month_end(first: date) -> date:
    """Last day of the month that starts at `first`."""
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])
