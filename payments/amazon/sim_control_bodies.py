"""The bodies of the simulator's control routes (`sim_control.py`): strict msgspec Structs, snake_case.

Why separate: the route module keeps its table and handlers; the shapes and limits of what a test may send
live here. Every Struct refuses unknown fields (`forbid_unknown_fields`), so a typo is a 400 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.params import QueryParameter

__all__ = [
    "BuyerSessionIn",
    "ClockIn",
    "DeclineIn",
    "DisputeIn",
    "FailuresIn",
    "GrantIn",
    "LegacyIn",
    "MerchantIn",
    "MerchantQuery",
    "MerchantRef",
    "OptionalMerchantQuery",
    "PaymentMethodIn",
    "ProviderIn",
    "RefundsProcessIn",
    "ReplayIn",
    "ResolveIn",
]

MerchantId = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{4,32}$")]
Money = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Environment = Literal["Sandbox", "Live"]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
KeyId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{4,64}$")]
Pem = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
MerchantQuery = Annotated[str, QueryParameter(max_length=32)]
OptionalMerchantQuery = Annotated[str | None, QueryParameter(max_length=32)]


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of the control bodies: unknown fields are refused."""


class MerchantIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId | None = None
    region: Literal["na", "eu", "jp"] = "eu"
    currency: Currency | None = None
    environment: Environment = "Sandbox"
    public_key_pem: Pem | None = None
    public_key_id: KeyId | None = None
    reserve_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    chargeback_fee: Money | None = None


class ProviderIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    public_key_pem: Pem | None = None
    public_key_id: KeyId | None = None
    environment: Environment = "Sandbox"


class GrantIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    public_key_id: KeyId


class BuyerSessionIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    amount: Money
    currency: Currency | None = None
    payment_intent: Literal["Authorize", "AuthorizeWithCapture", "Confirm"] = "Authorize"
    can_handle_pending_authorization: bool = False
    total_order_amount: Money | None = None
    merchant_reference_id: Short | None = None
    store_name: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    soft_descriptor: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    simulation: Literal["HardDeclined", "SoftDeclined", "BuyerCanceled", "PendingThenAuthorized", "PendingThenDeclined"] | None = None  # fmt: skip
    buyer_name: Short | None = None
    buyer_email: Short | None = None
    country_code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None
    checkout_session_id: Short | None = None
    environment: Environment = "Sandbox"


class PaymentMethodIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    charge_permission_id: Short


class MerchantRef(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId


class RefundsProcessIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    declines: Annotated[dict[Short, Literal["AmazonRejected", "ProcessingFailure"]], msgspec.Meta(max_length=100)] = {}


class DisputeIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    charge_id: Short
    amount: Money
    filing_reason: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Unrecognized"


class ResolveIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    dispute_id: Short
    resolution: Literal["BuyerWon", "MerchantWon", "NoFault"]


class DeclineIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    operation: Literal["CreateCharge", "Capture", "Refund"]
    reason_code: Literal[
        "SoftDeclined",
        "HardDeclined",
        "AmazonRejected",
        "ProcessingFailure",
        "TransactionTimedOut",
        "PaymentMethodNotAllowed",
        "MFANotCompleted",
    ]


class FailuresIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=100)]
    status: Literal[408, 425, 429, 500, 502, 503, 504]
    reason_code: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{1,64}$")] = "ServiceUnavailable"
    retry_after_s: Annotated[int, msgspec.Meta(ge=0, le=60)] | None = None
    # the call is carried out, then its answer is lost on the way back (the caller sees `status`): what a
    # timeout or a gateway error after Amazon processed a request looks like to the client
    after: bool = False
    method: Literal["GET", "POST", "PATCH", "DELETE"] | None = None  # only calls with this method fail


class ClockIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 0
    hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 3650)] = 0


class ReplayIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    index: Annotated[int, msgspec.Meta(ge=0)]


class LegacyIn(_Body, frozen=True, forbid_unknown_fields=True, kw_only=True):
    merchant_id: MerchantId
    amount: Money
    currency: Currency | None = None
    authorized: Money | None = None
    captured: Money | None = None
    merchant_reference_id: Short | None = None
    environment: Environment = "Sandbox"
