"""Request bodies the simulated Amazon Pay v2 API accepts, as strict msgspec Structs, and their decoding with
Amazon's error codes.

Why separate: the API routes (`sim_api.py`) and the control routes (`sim_control.py`) decode bodies the same
way; a bad body is always a 400 that names the field, never a 500.

Error mapping (developer.amazon.com/docs/amazon-pay-api-v2/error-handling.html): not JSON -> InvalidRequestFormat;
an unknown field -> UnrecognizedField; a missing required field -> MissingParameterValue; a wrong type, length
or value -> InvalidParameterValue. Field names and limits follow Amazon's request tables (softDescriptor <= 16,
merchantReferenceId <= 256, reasons <= 255 characters).
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

import msgspec

from ledger.money import AmountError, is_known_currency, parse_amount
from payments.amazon.sim_model import SimError, amount_max

__all__ = [
    "CancelBody",
    "CaptureBody",
    "CloseBody",
    "CompleteBody",
    "ContestBody",
    "CreateChargeBody",
    "CreateSessionBody",
    "EvidenceBody",
    "FileBody",
    "MerchantMetadata",
    "PaymentDetails",
    "PermissionUpdateBody",
    "Price",
    "RefundBody",
    "ReportBody",
    "SessionUpdateBody",
    "WebCheckoutDetails",
    "decode",
    "parse_price",
]

T = TypeVar("T")
Reason = Annotated[str, msgspec.Meta(max_length=255)]
Descriptor = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Text = Annotated[str, msgspec.Meta(max_length=1024)]
_FIELD = re.compile(r"field `([^`]+)`")
_PATH = re.compile(r"at `\$(.*)`$")


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are refused."""


class Price(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    amount: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    currencyCode: Annotated[str, msgspec.Meta(min_length=3, max_length=3)]


class MerchantMetadata(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchantReferenceId: Reference | None = None
    merchantStoreName: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    noteToBuyer: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    customInformation: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


class WebCheckoutDetails(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    checkoutReviewReturnUrl: Url | None = None
    checkoutResultReturnUrl: Url | None = None
    checkoutCancelUrl: Url | None = None


class PaymentDetails(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    paymentIntent: Annotated[str, msgspec.Meta(pattern="^(Authorize|AuthorizeWithCapture|Confirm)$")] | None = None
    canHandlePendingAuthorization: bool | None = None
    chargeAmount: Price | None = None
    totalOrderAmount: Price | None = None
    softDescriptor: Descriptor | None = None
    presentmentCurrency: Annotated[str, msgspec.Meta(min_length=3, max_length=3)] | None = None
    allowOvercharge: bool | None = None
    extendExpiration: bool | None = None


class CreateSessionBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    webCheckoutDetails: WebCheckoutDetails
    storeId: Id
    chargePermissionType: Annotated[str, msgspec.Meta(pattern="^OneTime$")] | None = None
    paymentDetails: PaymentDetails | None = None
    merchantMetadata: MerchantMetadata | None = None
    platformId: Id | None = None
    scopes: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=16)] | None = None


class SessionUpdateBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    webCheckoutDetails: WebCheckoutDetails | None = None
    paymentDetails: PaymentDetails | None = None
    merchantMetadata: MerchantMetadata | None = None
    platformId: Id | None = None


class CompleteBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    chargeAmount: Price
    totalOrderAmount: Price | None = None


class PermissionUpdateBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchantMetadata: MerchantMetadata


class CloseBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    closureReason: Reason | None = None
    cancelPendingCharges: bool = False


class CreateChargeBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    chargePermissionId: Id
    chargeAmount: Price
    captureNow: bool = False
    canHandlePendingAuthorization: bool = False
    softDescriptor: Descriptor | None = None
    merchantMetadata: MerchantMetadata | None = None


class CaptureBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    captureAmount: Price
    softDescriptor: Descriptor | None = None


class CancelBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cancellationReason: Reason | None = None


class RefundBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    chargeId: Id
    refundAmount: Price
    softDescriptor: Descriptor | None = None


class EvidenceBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    evidenceType: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    fileId: Id | None = None
    evidenceText: Annotated[str, msgspec.Meta(max_length=5000)] | None = None


class ContestBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchantEvidences: Annotated[list[EvidenceBody], msgspec.Meta(min_length=1, max_length=20)]


class FileBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=8)]
    purpose: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class ReportBody(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reportType: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    startTime: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    endTime: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


def field_of(message: str) -> str | None:
    """The field a msgspec validation message is about (`$.a.b` path, or the named field)."""
    named = _FIELD.search(message)
    at = _PATH.search(message)
    parts = re.findall(r"[A-Za-z_]\w*", at[1]) if at else []
    if named:
        parts.append(named[1])
    return ".".join(parts) or None


def decode(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body as `kind`; SimError 400 with Amazon's reasonCode naming the field otherwise."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Object contains unknown field"):
            code = "UnrecognizedField"
        elif message.startswith("Object missing required field"):
            code = "MissingParameterValue"
        else:
            code = "InvalidParameterValue"
        field = field_of(message)
        raise SimError(400, code, f"{field}: {message}" if field else message, field=field) from None
    except msgspec.DecodeError as exc:
        raise SimError(400, "InvalidRequestFormat", f"the body is not valid JSON: {exc}") from None


def parse_price(price: Price, field: str, *, allow_zero: bool = False) -> tuple[int, str]:
    """A Price as (minor units, currency); SimError 400 InvalidParameterValue naming `field` otherwise."""
    currency = price.currencyCode
    if not is_known_currency(currency):
        raise SimError(
            400, "InvalidParameterValue", f"{field}.currencyCode: unknown {currency!r}", field=f"{field}.currencyCode"
        )
    try:
        minor = parse_amount(price.amount, currency, allow_zero=allow_zero)
    except AmountError as exc:
        raise SimError(400, "InvalidParameterValue", f"{field}.amount: {exc}", field=f"{field}.amount") from None
    if minor > amount_max(currency):
        raise SimError(400, "InvalidParameterValue", f"{field}.amount exceeds one transaction's maximum", field=field)
    return minor, currency
