"""The Amazon Pay API v2 objects as Kontor sees them, and their defensive parsing from Amazon's JSON.

Why a module of its own: the client (`client.py`) and the use cases share these frozen value types, and the
parsing rules live in one place. Amazon's JSON is untrusted input: every reader here turns a missing or
ill-typed required field into `AmazonPayError(status, "InvalidResponse", ...)`, never a KeyError or TypeError.

Rules and their sources (developer.amazon.com/docs/amazon-pay-api-v2/*):
- Amounts are `{"amount": "<decimal string>", "currencyCode": "<ISO 4217>"}`; scales vary ("5.0", "14.00"), so
  they are parsed with the currency's decimals into integer minor units (`ledger.money.parse_amount`).
- Timestamps come in three published forms: compact `20221114T074550Z` (objects, SDK READMEs), ISO
  `2022-12-07T17:08:26.717Z` (disbursements) and `2022-08-04T00-00-00Z` (reports page); all become aware UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from ledger.money import AmountError, parse_amount

__all__ = [
    "RETRYABLE_STATUSES",
    "AmazonPayError",
    "Amount",
    "Charge",
    "ChargePermission",
    "CheckoutSession",
    "Credentials",
    "Disbursement",
    "Dispute",
    "Evidence",
    "Fields",
    "Refund",
    "Region",
    "Report",
    "format_timestamp",
    "parse_timestamp",
]

Region = Literal["na", "eu", "jp"]
# HTTP statuses the official SDKs retry (java ServiceConstants.serviceErrors; php CHANGES 2.5.2/2.7.0)
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
_DASHED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """One of Amazon's timestamp forms as an aware UTC datetime; ValueError for anything else."""
    for pattern in (_COMPACT, _DASHED):
        match = pattern.match(text)
        if match:
            year, month, day, hour, minute, second = (int(part) for part in match.groups())
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    match = _ISO.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a timestamp such as 20221114T074550Z or 2022-12-07T17:08:26.717Z")
    zone = "+00:00" if match[8] == "Z" else match[8]
    fraction = (match[7] or "0")[:6].ljust(6, "0")
    base = f"{match[1]}-{match[2]}-{match[3]}T{match[4]}:{match[5]}:{match[6]}.{fraction}{zone}"
    return datetime.fromisoformat(base).astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """The compact form Amazon's objects use: `20221114T074550Z` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class AmazonPayError(Exception):
    """Amazon refused a call, answered something unreadable, or could not be reached.

    `status` is the HTTP status Amazon answered (0: not reached), `reason_code` Amazon's reasonCode (e.g.
    `InvalidChargePermissionStatus`), `InvalidResponse` for an unreadable answer, or `Unreachable`.
    """

    def __init__(self, status: int, reason_code: str, message: str, *, reachable: bool | None = None) -> None:
        super().__init__(f"{status} {reason_code}: {message}")
        self.status, self.reason_code, self.message = status, reason_code, message
        self._reachable = reachable if reachable is not None else not (status == 0 or status in RETRYABLE_STATUSES)

    @property
    def reachable(self) -> bool:
        """False when Amazon could not be reached, or kept failing with 5xx/429 after the retries."""
        return self._reachable


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who signs: a merchant's own key, or a solution provider's key plus the merchant's `auth_token`.

    The private key and the token are secrets: they are left out of repr().
    """

    merchant_id: str
    public_key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    region: Region
    sandbox: bool
    auth_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Amount:
    """Integer minor units of `currency` (500 EUR = 5.00 EUR)."""

    minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    checkout_session_id: str
    state: str  # Open | Completed | Canceled
    reason_code: str | None
    payment_intent: str | None  # Authorize | AuthorizeWithCapture | Confirm
    charge_amount: Amount | None
    can_handle_pending_authorization: bool
    constraints: tuple[str, ...]
    charge_permission_id: str | None
    charge_id: str | None
    merchant_reference_id: str | None
    buyer_name: str | None
    buyer_email: str | None
    billing_address: dict[str, str | None] | None


@dataclass(frozen=True, slots=True)
class ChargePermission:
    charge_permission_id: str
    state: str  # Chargeable | NonChargeable | Closed
    reasons: tuple[str, ...]
    amount_limit: Amount | None
    amount_balance: Amount | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    charge_permission_id: str
    state: str  # AuthorizationInitiated | Authorized | CaptureInitiated | Captured | Canceled | Declined
    reason_code: str | None
    charge_amount: Amount
    capture_amount: Amount | None
    refunded_amount: Amount | None
    expires_at: datetime | None
    created_at: datetime | None
    merchant_reference_id: str | None = None  # merchantMetadata.merchantReferenceId (Kontor's invoice reference)


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    charge_id: str
    state: str  # RefundInitiated | Refunded | Declined
    reason_code: str | None
    refund_amount: Amount
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Dispute:
    dispute_id: str
    charge_id: str
    state: str  # UnderReview | ActionRequired | Resolved | Closed
    reason_code: str | None
    resolution: str | None  # BuyerWon | MerchantWon | NoFault
    amount: Amount
    filing_reason: str | None
    deadline: datetime | None  # merchantResponseDeadline
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of a contest: `evidence_type` is one of Amazon's EvidenceType values; text and/or an uploaded file."""

    evidence_type: str
    text: str | None = None
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    report_type: str
    processing_status: str  # IN_PROGRESS | COMPLETED | FAILED | CANCELLED
    report_document_id: str | None
    start_time: datetime | None
    end_time: datetime | None
    created_time: datetime | None


@dataclass(frozen=True, slots=True)
class Disbursement:
    settlement_id: str
    amazon_disbursement_reference_id: str
    amount: Amount
    transaction_time: datetime | None
    seller_id: str | None = None  # the Amazon merchant account paid out


class Fields:
    """Typed, defensive access to one JSON object of an Amazon answer (`status` goes into the errors)."""

    def __init__(self, data: object, status: int, what: str) -> None:
        if not isinstance(data, Mapping):
            raise AmazonPayError(status, "InvalidResponse", f"{what} is not a JSON object")
        self._data: Mapping[str, Any] = data
        self._status, self._what = status, what

    def _fail(self, key: str, problem: str) -> AmazonPayError:
        return AmazonPayError(self._status, "InvalidResponse", f"{self._what}.{key} {problem}")

    def child(self, key: str) -> Fields | None:
        value = self._data.get(key)
        return None if value is None else Fields(value, self._status, f"{self._what}.{key}")

    def text(self, key: str) -> str:
        value = self._data.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "is missing or not a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "is not a string")
        return value

    def flag(self, key: str) -> bool:
        value = self._data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(key, "is not a boolean")
        return value

    def opt_time(self, key: str) -> datetime | None:
        value = self.opt_text(key)
        if value is None:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise self._fail(key, f"is not a timestamp: {exc}") from None

    def opt_amount(self, key: str) -> Amount | None:
        price = self.child(key)
        return None if price is None else price.as_amount()

    def amount(self, key: str) -> Amount:
        found = self.opt_amount(key)
        if found is None:
            raise self._fail(key, "is missing")
        return found

    def as_amount(self) -> Amount:
        """This object as a price `{amount, currencyCode}`."""
        currency, text = self.text("currencyCode"), self.text("amount")
        try:
            return Amount(parse_amount(text, currency, allow_zero=True), currency)
        except AmountError as exc:
            raise AmazonPayError(self._status, "InvalidResponse", f"{self._what}: {exc}") from None

    def items(self, key: str) -> list[Fields]:
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "is not a list")
        return [Fields(item, self._status, f"{self._what}.{key}[{i}]") for i, item in enumerate(value)]

    def strings(self) -> dict[str, str | None]:
        """A flat object of strings (an address); other value types are dropped."""
        return {k: v for k, v in self._data.items() if isinstance(v, str) or v is None}
