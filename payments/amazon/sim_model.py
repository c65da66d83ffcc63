"""The Amazon Pay v2 simulator's records: one merchant's checkout sessions, charge permissions, charges, refunds,
disputes and evidence files, with the limits and lifetimes Amazon documents. Pure data, no I/O.

Why separate: the operations (`sim_state.py`, `sim_postsale.py`), the JSON views (`sim_views.py`), the API
(`sim_api.py`) and the settlement books (`sim_reports.py`) all read these records; keeping them in one small
module keeps each of those under its size budget.

Limits and lifetimes (developer.amazon.com/docs/amazon-pay-api-v2/{checkout-session,charge-permission,charge,
refund}.html, amazon-pay-checkout/asynchronous-processing.html; docs/amazon-pay.md §2):
- a Checkout Session not completed within 24 hours is Canceled (reason Expired);
- a one-time Charge Permission lives 180 days, allows at most 25 charges, up to `amountLimit` = the order
  amount + min(15 %, 75 EUR/GBP/USD, 8,400 JPY) (`headroom`);
- an authorization lives 30 days (then Canceled/ExpiredUnused); a capture within 7 days of it is synchronous;
- at most 10 refunds per charge; refunds + disputed amounts <= captured + headroom;
- one amount is at most 150,000 units (10,000,000 JPY);
- a chargeback must be answered within 11 days.
Ids: Charge Permission `S02-1234567-1234567` (S sandbox / P live; 01 NA, 02 EU, 03 JP), Charge `<cp>-C123456`,
Refund `<cp>-R123456`, Dispute `<cp>-B123456` (the CHARGEBACK IPN's ObjectId), v1 authorization `<cp>-A012345`.
"""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from collections.abc import Sized
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.money import minor_per_unit

__all__ = [
    "AUTHORIZATION_TTL",
    "CAPTURE_SYNC_WINDOW",
    "CHARGEBACK_FEE_MINOR",
    "CHARGES_PER_PERMISSION_MAX",
    "DISPUTE_RESPONSE_TTL",
    "OBJECTS_MAX",
    "PERMISSION_TTL",
    "REFUNDS_PER_CHARGE_MAX",
    "REGION_CODES",
    "RESERVE_PERCENT",
    "SESSION_TTL",
    "Buyer",
    "Failure",
    "SettlementEvent",
    "SimCharge",
    "SimDispute",
    "SimError",
    "SimFile",
    "SimMerchant",
    "SimPermission",
    "SimRefund",
    "SimSession",
    "StoredAnswer",
    "amount_max",
    "headroom",
]

SESSION_TTL = timedelta(hours=24)
PERMISSION_TTL = timedelta(days=180)
AUTHORIZATION_TTL = timedelta(days=30)
CAPTURE_SYNC_WINDOW = timedelta(days=7)
DISPUTE_RESPONSE_TTL = timedelta(days=11)
CHARGES_PER_PERMISSION_MAX = 25
REFUNDS_PER_CHARGE_MAX = 10
OBJECTS_MAX = 50_000  # per merchant and kind: the simulator's own bound on memory
REGION_CODES = {"na": "01", "eu": "02", "jp": "03"}
RESERVE_PERCENT = 5
CHARGEBACK_FEE_MINOR = 1500


class SimError(Exception):
    """An answer Amazon gives as an error: HTTP status, reasonCode, message."""

    def __init__(self, status: int, reason_code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{status} {reason_code}: {message}")
        self.status, self.reason_code, self.message, self.field = status, reason_code, message, field


def headroom(amount_minor: int, currency: str) -> int:
    """Amazon's allowance above an amount: min(15 %, 75 units; 8,400 for JPY)."""
    cap = 8_400 if currency == "JPY" else 75 * minor_per_unit(currency)
    return min(amount_minor * 15 // 100, cap)


def amount_max(currency: str) -> int:
    """The largest single amount: 150,000 units (10,000,000 JPY), in minor units."""
    return 10_000_000 if currency == "JPY" else 150_000 * minor_per_unit(currency)


@dataclass(frozen=True)
class Buyer:
    """What Amazon's hosted page knows about the buyer (fake, of the published shapes)."""

    name: str = "Jane Doe"
    email: str = "buyer@example.com"
    buyer_id: str = field(default_factory=lambda: "amzn1.account." + secrets.token_hex(14).upper())
    country_code: str = "DE"
    phone_number: str = "+49 30 1234567"
    state_or_region: str | None = None  # US addresses carry one (e.g. WA), German ones none

    def address(self, line1: str = "1 Example Street", line2: str | None = None) -> dict[str, str | None]:
        return {
            "name": self.name,
            "addressLine1": line1,
            "addressLine2": line2,
            "addressLine3": None,
            "city": "Exampletown",
            "county": None,
            "district": None,
            "stateOrRegion": self.state_or_region,
            "postalCode": "00000",
            "countryCode": self.country_code,
            "phoneNumber": self.phone_number,
        }


@dataclass
class SimSession:
    checkout_session_id: str
    environment: str  # Sandbox | Live
    created_at: datetime
    updated_at: datetime
    state: str = "Open"
    reason_code: str | None = None
    payment_intent: str | None = None
    can_handle_pending: bool = False
    currency: str | None = None
    charge_amount: int | None = None
    total_order_amount: int | None = None
    soft_descriptor: str | None = None
    merchant_reference_id: str | None = None
    store_name: str | None = None
    note_to_buyer: str | None = None
    custom_information: str | None = None
    review_url: str | None = None
    result_url: str | None = None
    store_id: str = "amzn1.application-oa2-client.00000000000000000000000000000000"
    buyer: Buyer | None = None
    simulation: str | None = None
    charge_permission_id: str | None = None
    charge_id: str | None = None


@dataclass
class SimPermission:
    charge_permission_id: str
    environment: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    currency: str
    order_amount: int
    amount_limit: int
    buyer: Buyer
    state: str = "Chargeable"
    reasons: list[str] = field(default_factory=list)
    merchant_reference_id: str | None = None
    store_name: str | None = None
    simulation: str | None = None  # the buyer's test instrument, applied to the first authorization
    charge_ids: list[str] = field(default_factory=list)
    legacy: bool = False


@dataclass
class SimCharge:
    charge_id: str
    charge_permission_id: str
    environment: str
    amount: int
    currency: str
    created_at: datetime
    updated_at: datetime
    state: str
    capture_now: bool = False
    reason_code: str | None = None
    soft_descriptor: str | None = None
    merchant_reference_id: str | None = None
    authorized_at: datetime | None = None
    expires_at: datetime | None = None
    captured: int | None = None  # the capture amount, once capturing
    pending_outcome: str | None = None  # what processing turns an AuthorizationInitiated charge into
    refunded: int = 0  # completed refunds
    refunding: int = 0  # refunds initiated and not yet processed
    disputed: int = 0  # chargebacks not won back
    refund_ids: list[str] = field(default_factory=list)


@dataclass
class SimRefund:
    refund_id: str
    charge_id: str
    charge_permission_id: str
    environment: str
    amount: int
    currency: str
    created_at: datetime
    updated_at: datetime
    state: str = "RefundInitiated"
    reason_code: str | None = None
    soft_descriptor: str | None = None
    decline_reason: str | None = None  # armed: processing declines it with this reasonCode


@dataclass
class SimDispute:
    dispute_id: str
    charge_id: str
    charge_permission_id: str
    environment: str
    amount: int
    currency: str
    filing_reason: str
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    state: str = "ActionRequired"
    reason_code: str | None = "MerchantResponseRequired"
    resolution: str | None = None
    evidences: list[dict[str, str | None]] = field(default_factory=list)


@dataclass
class SimFile:
    file_id: str
    environment: str
    file_type: str
    created_at: datetime
    url_expires_at: datetime
    upload_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    content: bytes | None = None


@dataclass(frozen=True)
class SettlementEvent:
    posted_at: datetime
    kind: str  # Capture | Refund | Chargeback
    transaction_id: str
    seller_reference_id: str
    order_reference_id: str
    amount: int  # signed, from the merchant's view
    fee_fixed: int = 0  # negative: the chargeback fee


@dataclass(frozen=True)
class Failure:
    """An answer injected by /sim/failures for the next API call (of `method`, if given); `after`: the call is
    carried out and only its answer is replaced (lost on the way back to the caller)."""

    status: int
    reason_code: str
    retry_after_s: int | None = None
    after: bool = False
    method: str | None = None


@dataclass(frozen=True)
class StoredAnswer:
    """An idempotent POST's first answer, replayed for the same key, method, path and body."""

    fingerprint: str
    status: int
    body: bytes
    stored_at: datetime


@dataclass
class SimMerchant:
    """One Amazon Pay merchant account: its objects, its idempotency keys, what it is owed."""

    merchant_id: str
    region: str
    currency: str
    reserve_percent: int = RESERVE_PERCENT
    chargeback_fee_minor: int = CHARGEBACK_FEE_MINOR
    sessions: dict[str, SimSession] = field(default_factory=dict)
    permissions: dict[str, SimPermission] = field(default_factory=dict)
    charges: dict[str, SimCharge] = field(default_factory=dict)
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    disputes: dict[str, SimDispute] = field(default_factory=dict)
    files: dict[str, SimFile] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # upload URL token -> file id
    idempotency: OrderedDict[str, StoredAnswer] = field(default_factory=OrderedDict)
    armed_declines: dict[str, str] = field(default_factory=dict)  # operation -> reasonCode
    events: list[SettlementEvent] = field(default_factory=list)
    outbox: list[tuple[str, str, str]] = field(default_factory=list)  # (ObjectType, ObjectId, ChargePermissionId)
    serial: int = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def new_permission_id(self, environment: str) -> str:
        letter = "S" if environment == "Sandbox" else "P"
        while True:
            digits = f"{secrets.randbelow(10**7):07d}-{secrets.randbelow(10**7):07d}"
            candidate = f"{letter}{REGION_CODES.get(self.region, '02')}-{digits}"
            if candidate not in self.permissions:
                return candidate

    def child_id(self, permission_id: str, letter: str) -> str:
        """`<cp>-C123456` style ids (letter C, R, B); unique through the merchant's serial."""
        return f"{permission_id}-{letter}{self.next_serial() % 10**6:06d}"

    @staticmethod
    def new_session_id() -> str:
        return str(uuid.uuid4())

    def notify(self, object_type: str, object_id: str, permission_id: str) -> None:
        """Queue an IPN (STATE_CHANGE) for the simulator to send after the current operation."""
        self.outbox.append((object_type, object_id, permission_id))

    def check_room(self, kind: Sized) -> None:
        if len(kind) >= OBJECTS_MAX:
            raise SimError(400, "InvalidRequest", f"the simulator keeps at most {OBJECTS_MAX} objects of a kind")
