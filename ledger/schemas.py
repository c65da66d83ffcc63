"""Wire types of the ledger API: msgspec Structs, decoded strictly, documented in the OpenAPI schema.

Why one module (over 400 lines): it is declarations only, the shapes of every ledger route side by side, so that
a client developer and the OpenAPI document read one vocabulary; the types share `DatedBody`, amount and limit
annotations, and splitting them by route would scatter those without separating any logic.

Request types are frozen, forbid unknown fields and carry Meta limits; response types are separate.
Tenant ids, statuses and balances never come from request bodies. Amounts travel as decimal strings
("119.00") in the business code's currency; the pattern admits up to 8 decimals so that a currency
precision error (1.001 EUR) is reported as 422 with the field path rather than as a pattern mismatch.
Request types that carry dates derive from `DatedBody`: every date in them lies in the ledger's range
(msgspec has no bounds for dates, so it is checked when the body is decoded, before anything runs), and every
date typed `EffectiveDate` (a date that becomes an entry's effective date) lies within the posting horizon of
the request (`POSTING_HORIZON`, today + KONTOR_POSTING_HORIZON_DAYS, set per request by the HTTP layer).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime
from typing import Annotated, ClassVar, Generic, Literal, TypeVar, get_args, get_type_hints

from msgspec import Meta, Struct

from ledger.audit import PostedBy
from ledger.domain import DATE_MAX, DATE_MIN, LINES_PER_ENTRY_MAX, Horizon

T = TypeVar("T")

# the start of the decoding error `DatedBody` raises; ledger.http.problems answers it as 422 date_out_of_range
DATE_RANGE_ERROR = "date out of range"
# DATE_MIN..DATE_MAX as the OpenAPI document states it (with format: date), so that generated requests stay in it
DATE_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
LedgerDate = Annotated[
    date,
    Meta(
        description=f"A business date, {DATE_MIN.isoformat()} to {DATE_MAX.isoformat()} (422 date_out_of_range "
        "outside)",
        examples=["2026-11-27"],
    ),
]


# the start of the decoding error for an effective date after the posting horizon: 422 date_beyond_horizon
DATE_HORIZON_ERROR = "date beyond horizon"


class _Effective:
    """Marks a date field whose value becomes an entry's effective date (see `EffectiveDate`)."""


EFFECTIVE = _Effective()
EffectiveDate = Annotated[
    date,
    Meta(
        description=f"A business date that is booked, {DATE_MIN.isoformat()} to {DATE_MAX.isoformat()} (422 "
        "date_out_of_range outside) and at most KONTOR_POSTING_HORIZON_DAYS (default 366) after today (422 "
        "date_beyond_horizon after)",
        examples=["2026-11-27"],
    ),
    EFFECTIVE,
]


# set by the HTTP layer for each request (ledger.http.inputs.horizon_layer); None outside requests: no horizon
POSTING_HORIZON: ContextVar[Horizon | None] = ContextVar("kontor_posting_horizon", default=None)


class DatedBody(Struct, frozen=True):
    """Base of request bodies with date fields: each date lies from DATE_MIN to DATE_MAX (1900-01-01 to
    2999-12-31, what the journal stores), else decoding fails with "date out of range: `<field>` ..." and
    the request is answered 422 `date_out_of_range` naming the field before any work is done. A field typed
    `EffectiveDate` also lies within the request's posting horizon, else "date beyond horizon: `<field>` ..."
    and 422 `date_beyond_horizon`."""

    _date_fields: ClassVar[dict[type, tuple[tuple[str, bool], ...]]] = {}

    def __post_init__(self) -> None:
        cls = type(self)
        names = DatedBody._date_fields.get(cls)
        if names is None:
            names = DatedBody._date_fields[cls] = _dates_of(cls)
        for name, effective in names:
            value = getattr(self, name)
            if value is None:
                continue
            if not DATE_MIN <= value <= DATE_MAX:
                raise ValueError(
                    f"{DATE_RANGE_ERROR}: `{name}` {value.isoformat()} is not between "
                    f"{DATE_MIN.isoformat()} and {DATE_MAX.isoformat()}"
                )
            horizon = POSTING_HORIZON.get()
            if effective and horizon is not None and value > horizon.last:
                raise ValueError(f"{DATE_HORIZON_ERROR}: `{name}` {horizon.explain(value)}")


def _dates_of(cls: type) -> tuple[tuple[str, bool], ...]:
    """(name, is an effective date) of each date field of a request type."""
    hints = get_type_hints(cls, include_extras=True)
    found = []
    for name in cls.__struct_fields__:  # type: ignore[attr-defined]
        options = [hints[name], *get_args(hints[name])]  # the type, or the members of `X | None`
        dated = [o for o in options if o is date or (get_args(o) and get_args(o)[0] is date)]
        if dated:
            found.append((name, any(EFFECTIVE in get_args(o)[1:] for o in dated)))
    return tuple(found)


ENTRIES_PER_BATCH_MAX = 1000
LINES_PER_BATCH_MAX = 20_000
METADATA_KEYS_MAX = 50

AmountText = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{1,16}(\.[0-9]{1,8})?$",
        examples=["119.00"],
        description="Positive decimal amount as a string, e.g. '119.00'.",
    ),
]
CurrencyCode = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code")]
CountryCode = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", examples=["DE"], description="ISO 3166 alpha-2")]
AccountNumber = Annotated[str, Meta(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,19}$", examples=["1400"])]
CustomerNumber = Annotated[str, Meta(pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$", examples=["C-1"])]
BusinessCode = Annotated[int, Meta(ge=1000, le=9999, examples=[1001], description="4-digit business code")]
MetadataKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MetadataValue = Annotated[str, Meta(max_length=500)]
Role = Literal["accountant", "poster", "admin"]
AccountTypeText = Literal["asset", "liability", "equity", "revenue", "expense"]
VatRateText = Annotated[str, Meta(pattern=r"^[0-9]{1,2}(\.[0-9]{1,2})?$", examples=["19", "5.5"])]
BalanceSide = Literal["DEBIT", "CREDIT", "BALANCED"]


# --- onboarding --------------------------------------------------------------------------------------
class BusinessCreate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    code: BusinessCode
    country: CountryCode
    currency: CurrencyCode
    chart: Literal["skr03", "skr04"] = "skr03"
    vat_rates: Annotated[list[VatRateText], Meta(max_length=4)] | None = None


class MerchantCreate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    businesses: Annotated[list[BusinessCreate], Meta(min_length=1, max_length=50)]


class ApiKeyCreate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    role: Role


class BusinessOut(Struct, kw_only=True):
    code: int
    country: str
    currency: str
    chart: str
    vat_rates: list[str]
    closed_through: date | None
    created_at: datetime


class ApiKeyOut(Struct, kw_only=True):
    key_id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut, kw_only=True):
    key: str  # shown once; only its SHA-256 is stored


class MerchantCreated(Struct, kw_only=True):
    merchant_id: int
    name: str
    businesses: list[BusinessOut]
    api_key: ApiKeyCreated


# --- accounts ----------------------------------------------------------------------------------------
class AccountCreate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    number: AccountNumber
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    type: AccountTypeText
    role: Annotated[str, Meta(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")] | None = None
    vat_rate: VatRateText | None = None
    alt_number: Annotated[str, Meta(min_length=1, max_length=20)] | None = None
    allow_negative: bool = True
    customer_ledger: bool = False


class AccountUpdate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    alt_number: Annotated[str, Meta(min_length=1, max_length=20)] | None = None


class AccountOut(Struct, kw_only=True):
    number: str
    name: str
    type: str
    normal_balance: Literal["DEBIT", "CREDIT"]
    role: str | None
    vat_rate: str | None
    alt_number: str | None
    allow_negative: bool
    customer_ledger: bool


# --- journal -----------------------------------------------------------------------------------------
class LineIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    account: AccountNumber
    debit: AmountText | None = None
    credit: AmountText | None = None
    customer: CustomerNumber | None = None
    currency: CurrencyCode | None = None  # only for FX lines; defaults to the business code's currency


class EntryIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    effective_date: EffectiveDate
    description: Annotated[str, Meta(min_length=1, max_length=500)]
    lines: Annotated[list[LineIn], Meta(min_length=2, max_length=LINES_PER_ENTRY_MAX)]
    reference: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=METADATA_KEYS_MAX)] = {}
    order_reference: (
        Annotated[
            str, Meta(min_length=1, max_length=200, description="the order the entry belongs to (DATEV Belegfeld 2)")
        ]
        | None
    ) = None


class CorrectionIn(EntryIn, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of `POST .../entries`: an entry, and why it is posted. `reason` is required from accountant keys
    (their entries are corrections: 422 `reason_required` without it) and optional for the others; it is kept in
    the entry's metadata `reason`, as the web pages' correction form keeps it, so `metadata.reason` may be given
    instead (both, when they differ: 422 `reason_conflict`)."""

    reason: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class BatchIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    entries: Annotated[list[EntryIn], Meta(min_length=1, max_length=ENTRIES_PER_BATCH_MAX)]


class ReversalIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # default: the original's date while its period is open, else today (ledger.domain.reversal_date)
    effective_date: EffectiveDate | None = None
    description: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    # why (audit trail, GET .../audit): required from accountant keys, optional for poster and admin keys
    reason: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class PeriodCloseIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)] | None = None  # kept in the audit trail


class LineOut(Struct, kw_only=True):
    line_no: int
    account: str
    debit: str | None
    credit: str | None
    currency: str
    customer: str | None = None


class EntryOut(Struct, kw_only=True):
    id: int
    business: int
    effective_date: date
    recorded_at: datetime
    description: str
    reference: str | None  # the document number: invoice, credit note, goodwill, payment (DATEV Belegfeld 1)
    metadata: dict[str, str]
    reverses: int | None
    reversed_by: int | None
    posted_by: PostedBy | None  # the API key whose request posted it; None: Kontor itself (a job, an IPN)
    lines: list[LineOut]
    order_reference: str | None = None  # the order the entry belongs to (DATEV Belegfeld 2)


class BatchOut(Struct, kw_only=True):
    entries: list[EntryOut]


class Page(Struct, Generic[T], kw_only=True):
    items: list[T]
    next_cursor: str | None


# --- balances and reports ----------------------------------------------------------------------------
class CurrencyBalance(Struct, kw_only=True):
    currency: str
    debit_total: str
    credit_total: str
    balance: str  # absolute amount; `side` says where it sits
    side: BalanceSide


class AccountBalanceOut(Struct, kw_only=True):
    account: str
    name: str
    type: str
    as_of: date | None
    customer: str | None
    balances: list[CurrencyBalance]


class CustomerAccountOut(Struct, kw_only=True):
    customer: str
    currency: str
    balance: str
    state: BalanceSide
    debit_total: str
    credit_total: str
    as_of: date | None
    other_currencies: list[CurrencyBalance]


class TrialBalanceRow(Struct, kw_only=True):
    account: str
    name: str
    type: str
    alt_number: str | None
    currency: str
    debit: str
    credit: str


class CurrencyTotals(Struct, kw_only=True):
    currency: str
    debit: str
    credit: str


class TrialBalanceOut(Struct, kw_only=True):
    business: int
    as_of: date | None
    rows: list[TrialBalanceRow]
    totals: list[CurrencyTotals]
    balanced: bool


class RegisterRow(Struct, kw_only=True):
    entry_id: int
    line_no: int
    effective_date: date
    description: str
    reference: str | None
    customer: str | None
    debit: str | None
    credit: str | None
    balance: str
    side: BalanceSide
    order_reference: str | None = None


class RegisterOut(Struct, kw_only=True):
    account: str
    name: str
    currency: str
    customer: str | None
    from_date: date | None
    to_date: date | None
    opening_balance: str
    opening_side: BalanceSide
    rows: list[RegisterRow]
    next_cursor: str | None


class ReportLine(Struct, kw_only=True):
    account: str
    name: str
    alt_number: str | None
    amount: str
    # balance sheet, an account keeping customer accounts (receivables): the line sums the balances of the
    # `customers` whose accounts are on one side, "debit_balances" (they owe: an asset) or "credit_balances"
    # (they paid in advance or too much: a liability); None for a whole account
    portion: Literal["debit_balances", "credit_balances"] | None = None
    customers: int | None = None


class IncomeStatementOut(Struct, kw_only=True):
    business: int
    currency: str
    from_date: date
    to_date: date
    revenue: list[ReportLine]
    expenses: list[ReportLine]
    total_revenue: str
    total_expenses: str
    net_income: str


class BalanceSheetOut(Struct, kw_only=True):
    """Assets and asset and liability accounts by the side their balance is on (never netted: a debit balance is
    an asset, a credit balance a liability, whatever the account's type); receivables split per customer."""

    business: int
    currency: str
    as_of: date
    assets: list[ReportLine]
    liabilities: list[ReportLine]
    equity: list[ReportLine]
    current_earnings: str
    total_assets: str
    total_liabilities_and_equity: str
    balanced: bool


class PeriodOut(Struct, kw_only=True):
    period: str
    closed_at: datetime
    closed_by: str


class PeriodCloseOut(Struct, kw_only=True):
    business: int
    closed_through: date
    periods: list[PeriodOut]


class GLRow(Struct, kw_only=True):
    account: str
    alt_number: str | None  # the merchant's own account number, for the import into their G/L
    name: str
    type: str
    country: str
    tax_code: str  # the VAT rate the account carries ("19", "7", "0"), empty when none
    currency: str
    opening_debit: str
    opening_credit: str
    debit: str  # movements of the period
    credit: str
    closing_debit: str
    closing_credit: str


class GLTotals(Struct, kw_only=True):
    currency: str
    opening_debit: str
    opening_credit: str
    debit: str
    credit: str
    closing_debit: str
    closing_credit: str


class GLReportOut(Struct, kw_only=True):
    business: int
    country: str
    period: str
    from_date: date
    to_date: date
    closed: bool  # the period is closed: these figures are final
    rows: list[GLRow]
    totals: list[GLTotals]


class BrokenLink(Struct, kw_only=True):
    seq: int | None
    entry_id: int | None
    reason: str


class VerifyOut(Struct, kw_only=True):
    business: int
    ok: bool
    entries: int
    chained: int
    unchained: int
    balances_match_lines: bool
    first_broken: BrokenLink | None
