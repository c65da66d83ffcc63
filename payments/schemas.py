"""Wire types of the order and Amazon Pay API (field names in the spirit of the reference product).

Every document a payment service reports carries its own reference (order, invoice, cancellation,
return, goodwill, payment reference): a retry with the same reference and body gets the stored
response, the same reference with another body is refused with 409.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from ledger.schemas import AmountText, DatedBody, EffectiveDate, LedgerDate, VatRateText

Reference = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_./-]{1,32}$", examples=["4711"])]
OrderReference = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]{1,20}$",
        examples=["order-42"],
        description="At most 20 characters: Amazon reference ids derive from it",
    ),
]
SignedAmountText = Annotated[str, Meta(pattern=r"^-?[0-9]{1,16}(\.[0-9]{1,8})?$", examples=["119.00", "-5.00"])]
CheckoutSessionId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9-]{1,100}$",
        examples=["bd504926-f659-4ad7-a1a9-9a747aaf5275"],
        description="Amazon Pay checkout session id (from the shop's Amazon Pay checkout)",
    ),
]
Text40 = Annotated[str, Meta(min_length=1, max_length=100)]
PositionType = Literal[
    "SALES_ARTICLE",
    "DISCOUNT",
    "SHIPPING_COSTS",
    "SHIPPING_COSTS_EXPRESS",
    "FREE_ARTICLE",
    "SERVICE_CHARGE",
    "CASH_ON_DELIVERY",
    "GIFT_CARD_VOUCHER_SALE",
    "MARKETPLACE_PROVISION",
    "SUBSCRIPTION_ORDER",
]
GoodwillReason = Literal[
    "CUSTOMER_COMPLAINT",
    "DELIVERY_DELAYED",
    "ARTICLE_PARCEL_MISSING",
    "CORRECTION_VOUCHER",
    "ARTICLE_DEFECTIVE",
    "CORRECTION_PRICE",
    "LOSS_OF_RETURN_POST",
    "LOSS_OF_RETURN_WAREHOUSE",
    "LOSS_OF_DELIVERY",
    "CONTRADICTION_OF_SIGNATURE",
    "FRAUD",
    "ISSUE_IN_STORE",
    "REFUND_EXPRESS_COSTS",
    "LOSS_OF_DELIVERY_WARENPOST",
    "WRONG_DELIVERY",
    "OTHER",
]


class AmazonPaySettingsIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Connect a business code to its Amazon Pay merchant account: either the merchant's own API keys from
    Integration Central (public_key_id + private_key), or, when Kontor acts as the merchant's solution provider,
    the MWS auth token the merchant granted Kontor (exchanged for a v2 authorization token). Secrets are
    write-only: a later PUT for the same Amazon account may leave out `private_key` (with the same `public_key_id`)
    or `mws_auth_token` to keep the stored one."""

    amazon_merchant_id: Annotated[str, Meta(pattern=r"^[A-Z0-9]{5,32}$", examples=["A3EXAMPLE0MERCHANT"])]
    store_id: Annotated[str, Meta(pattern=r"^amzn1\.application-oa2-client\.[0-9a-f]{32}$")] | None = None
    # Amazon Pay's region of the account; left out: the one that settles the business code's currency
    # (USD na, EUR/GBP eu, JPY jp); one that does not settle it is a 422
    region: Literal["na", "eu", "jp"] | None = None
    sandbox: bool = False
    payment_execution: Literal["one_step", "two_step"] = "one_step"
    public_key_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{8,100}$", examples=["SANDBOX-AHEXAMPLEKEY"])] | None = (
        None
    )
    private_key: Annotated[str, Meta(min_length=1, max_length=16384, description="PEM (PKCS#8 or PKCS#1)")] | None = (
        None
    )
    mws_auth_token: Annotated[str, Meta(pattern=r"^amzn\.mws\.[A-Za-z0-9-]{1,100}$")] | None = None


class AmazonPaySettingsOut(Struct, kw_only=True):
    amazon_merchant_id: str
    store_id: str | None
    region: str
    sandbox: bool
    payment_execution: str
    access: str  # keys | delegated | v1 (Checkout v1 settings: connect again with v2 credentials)
    public_key_id: str | None
    private_key_set: bool
    auth_token_set: bool
    upgrade_required: bool
    verified_at: datetime | None
    updated_at: datetime


class AddressIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    first_name: Annotated[str, Meta(max_length=100)] | None = None
    last_name: Annotated[str, Meta(max_length=100)] | None = None
    company: Annotated[str, Meta(max_length=100)] | None = None
    street: Annotated[str, Meta(max_length=100)] | None = None
    street_number: Annotated[str, Meta(max_length=20)] | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    postal_place: Annotated[str, Meta(max_length=100)] | None = None
    country_code: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] | None = None
    email: Annotated[str, Meta(max_length=200)] | None = None


class ItemIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    item_reference: Annotated[int, Meta(ge=1, le=999999)]
    position_type: PositionType = "SALES_ARTICLE"
    description: Text40
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    gross_unit_price: SignedAmountText
    vat_rate: VatRateText


class PaymentMethodIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["AMAZON_PAY"] = "AMAZON_PAY"
    checkout_session_id: CheckoutSessionId
    soft_descriptor: Annotated[str, Meta(min_length=1, max_length=16)] | None = None  # on the buyer's statement


class OrderCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    order_reference: OrderReference
    order_date: EffectiveDate
    items: Annotated[list[ItemIn], Meta(min_length=1, max_length=500)]
    payment_method: PaymentMethodIn
    bill_to: AddressIn = AddressIn()


class ItemRef(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    item_reference: Annotated[int, Meta(ge=1, le=999999)]


class ItemQuantity(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    item_reference: Annotated[int, Meta(ge=1, le=999999)]
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None  # default: all that is left


class InvoiceCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    invoice_reference: Reference
    invoice_date: EffectiveDate
    items: Annotated[list[ItemRef], Meta(min_length=1, max_length=500)]
    due_date: LedgerDate | None = None
    dispatch_date: LedgerDate | None = None
    carrier: Annotated[str, Meta(max_length=32)] | None = None
    tracking_code: Annotated[str, Meta(max_length=100)] | None = None
    # two-step: shown on the buyer's card statement with the capture (Amazon's softDescriptor, at most 16)
    soft_descriptor: Annotated[str, Meta(min_length=1, max_length=16)] | None = None


class CancellationCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cancellation_reference: Reference
    cancellation_date: EffectiveDate
    reason: Literal["OUT_OF_STOCK", "CUSTOMER_CANCELLATION", "PREPAYMENT_NOT_RECEIVED", "CUSTOMER_SERVICE"]
    items: Annotated[list[ItemRef], Meta(min_length=1, max_length=500)]


class ReturnCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    return_reference: Reference
    return_date: EffectiveDate
    invoice_reference: Reference
    reason: Literal["CUSTOMER_RETURN", "CARRIER_RETURN"]
    items: Annotated[list[ItemQuantity], Meta(min_length=1, max_length=500)]


class GoodwillCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    goodwill_reference: Reference
    goodwill_date: EffectiveDate
    reason: GoodwillReason
    items: Annotated[list[ItemQuantity], Meta(max_length=500)] | None = None
    gross_amount: AmountText | None = None  # instead of items: split over the VAT rates pro rata


class PaymentCreate(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    payment_reference: Reference
    payment_date: EffectiveDate
    amount: AmountText
    method: Literal["BANK_TRANSFER", "CASH", "CARD_TERMINAL", "OTHER"] = "BANK_TRANSFER"


class ItemOut(Struct, kw_only=True):
    item_reference: int
    position_type: str
    description: str
    quantity: int
    gross_unit_price: str
    vat_rate: str
    state: str
    invoice_reference: str | None
    returned_quantity: int


class ChargeOut(Struct, kw_only=True):
    charge_id: str
    amount: str  # authorized
    captured: str
    state: str  # Amazon's: AuthorizationInitiated, Authorized, CaptureInitiated, Captured, Canceled, Declined
    reason: str | None
    expires_at: datetime | None
    invoice_reference: str | None


class RefundOut(Struct, kw_only=True):
    reference: str
    refund_id: str | None
    amount: str
    state: str
    reason: str | None


class OrderMoneyOut(Struct, kw_only=True):
    invoiced: str
    credited: str
    paid: str
    refunded: str
    open: str  # what the customer still owes on this order (negative: owed to the customer)


class OrderOut(Struct, kw_only=True):
    order_reference: str
    customer: str
    order_date: date
    currency: str
    gross_amount: str
    payment_execution: str
    status: str  # pending, authorization_pending, authorized, authorization_expired, captured, invoiced,
    # refunded, declined, cancelled, closed (payments/lifecycle.py)
    status_reason: str | None
    checkout_session_id: str | None
    charge_permission_id: str | None
    charge_permission_state: str | None  # Chargeable, NonChargeable, Closed: as Amazon last said
    charge_permission_reason: str | None
    items: list[ItemOut]
    charges: list[ChargeOut]
    refunds: list[RefundOut]
    money: OrderMoneyOut


class DocumentOut(Struct, kw_only=True):
    kind: str
    reference: str
    order_reference: str
    document_date: date
    gross_amount: str
    entry_id: int | None
    refunded: str
    offset: str
    charges: list[ChargeOut]
    refunds: list[RefundOut]
