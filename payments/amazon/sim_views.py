"""The simulator's objects as Amazon Pay v2 JSON: the key sets, nesting, types and timestamp forms of the
published samples (tests/data/amazon_pay_v2/, compared field by field in tests/unit/test_amazon_simulator_samples).

Why separate: the shapes are a contract of their own; the state modules must not care about them.
Timestamps are compact `YYYYMMDDTHHMMSSZ` as in the samples; amounts `{"amount": "14.00", "currencyCode"}`.
Where a sample has a field the simulator has no data for, it is null (as Amazon sends it: samples are full of
nulls). A Completed Checkout Session is sparse, as Amazon's answer is (checkout-session-completed.partial.txt):
details move to the Charge Permission (php SDK README: "once Completed, obtain buyer details from the charge").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.money import format_amount
from payments.amazon.sim_model import (
    SESSION_TTL,
    SimCharge,
    SimDispute,
    SimFile,
    SimMerchant,
    SimPermission,
    SimRefund,
    SimSession,
)
from payments.amazon.sim_state import CONSTRAINTS, constraints, used_amount

__all__ = [
    "charge_json",
    "dispute_json",
    "error_json",
    "file_json",
    "iso_ms",
    "permission_json",
    "price",
    "refund_json",
    "session_json",
    "stamp",
]

REDIRECT_HOSTS = {"na": "apay-us.amazon.com", "eu": "apay-eu.amazon.com", "jp": "apay-fe.amazon.com"}


def stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso_ms(moment: datetime) -> str:
    """`2022-12-07T17:08:26.717Z`, the disbursement answer's form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def price(minor: int | None, currency: str | None) -> dict[str, str] | None:
    if minor is None or currency is None:
        return None
    return {"amount": format_amount(minor, currency), "currencyCode": currency}


def error_json(reason_code: str, message: str) -> dict[str, str]:
    return {"reasonCode": reason_code, "message": message}


def _status(state: str, reason: str | None, at: datetime) -> dict[str, Any]:
    return {"state": state, "reasonCode": reason, "reasonDescription": None, "lastUpdatedTimestamp": stamp(at)}


def _metadata(
    reference: str | None, store: str | None, note: str | None = None, custom: str | None = None
) -> dict[str, Any]:
    return {
        "merchantReferenceId": reference,
        "merchantStoreName": store,
        "noteToBuyer": note,
        "customInformation": custom,
    }


def session_json(merchant: SimMerchant, session: SimSession) -> dict[str, Any]:
    full = session.state != "Completed"
    buyer = session.buyer if full else None
    open_constraints = constraints(session)
    redirect = None
    if session.state == "Open" and not open_constraints:
        host = REDIRECT_HOSTS.get(merchant.region, REDIRECT_HOSTS["eu"])
        redirect = f"https://{host}/checkout/processing?amazonCheckoutSessionId={session.checkout_session_id}"
    return {
        "checkoutSessionId": session.checkout_session_id,
        "webCheckoutDetails": {
            "checkoutReviewReturnUrl": session.review_url,
            "checkoutResultReturnUrl": session.result_url,
            "amazonPayRedirectUrl": redirect,
        }
        if full
        else None,
        "productType": "PayAndShip" if full else None,
        "paymentDetails": _payment_details(session) if full else None,
        "chargePermissionType": "OneTime" if full else None,
        "recurringMetadata": None,
        "merchantMetadata": _metadata(
            session.merchant_reference_id, session.store_name, session.note_to_buyer, session.custom_information
        )
        if full
        else None,
        "supplementaryData": None,
        "buyer": None if buyer is None else {"name": buyer.name, "email": buyer.email, "buyerId": buyer.buyer_id},
        "billingAddress": None if buyer is None else buyer.address(),
        "paymentPreferences": [{"paymentDescriptor": "Your selected Amazon payment method"}] if buyer else None,
        "statusDetails": _status(session.state, session.reason_code, session.updated_at),
        "shippingAddress": None if buyer is None else buyer.address("2 Example Street", "Suite 100"),
        "platformId": None,
        "chargePermissionId": session.charge_permission_id,
        "chargeId": session.charge_id,
        "constraints": [{"constraintId": c, "description": CONSTRAINTS[c]} for c in open_constraints],
        "creationTimestamp": stamp(session.created_at),
        "expirationTimestamp": stamp(session.created_at + SESSION_TTL),
        "storeId": session.store_id,
        "providerMetadata": {"providerReferenceId": None},
        "releaseEnvironment": session.environment,
        "checkoutButtonText": None,
        "deliverySpecifications": None,
    }


def _payment_details(session: SimSession) -> dict[str, Any]:
    return {
        "paymentIntent": session.payment_intent,
        "canHandlePendingAuthorization": session.can_handle_pending,
        "chargeAmount": price(session.charge_amount, session.currency),
        "totalOrderAmount": price(session.total_order_amount, session.currency),
        "softDescriptor": session.soft_descriptor,
        "presentmentCurrency": session.currency,
        "allowOvercharge": None,
        "extendExpiration": None,
    }


def permission_json(merchant: SimMerchant, permission: SimPermission) -> dict[str, Any]:
    buyer = permission.buyer
    balance = max(permission.amount_limit - used_amount(merchant, permission), 0)
    reasons = [{"reasonCode": r, "reasonDescription": None} for r in permission.reasons] or None
    return {
        "chargePermissionId": permission.charge_permission_id,
        "amazonPayToken": permission.charge_permission_id.replace("-", "")[-12:] + "AMZN",
        "chargePermissionReferenceId": None,
        "platformId": None,
        "buyer": {
            "name": buyer.name,
            "email": buyer.email,
            "buyerId": buyer.buyer_id,
            "primeMembershipTypes": None,
            "phoneNumber": buyer.phone_number,
        },
        "shippingAddress": buyer.address("2 Example Street", "Suite 100"),
        "billingAddress": buyer.address(),
        "paymentPreferences": [{"paymentDescriptor": "Your selected Amazon payment method"}],
        "statusDetails": {
            "state": permission.state,
            "reasons": reasons,
            "lastUpdatedTimestamp": stamp(permission.updated_at),
        },
        "creationTimestamp": stamp(permission.created_at),
        "expirationTimestamp": stamp(permission.expires_at),
        "merchantMetadata": _metadata(permission.merchant_reference_id, permission.store_name),
        "releaseEnvironment": permission.environment,
        "limits": {
            "amountLimit": price(permission.amount_limit, permission.currency),
            "amountBalance": price(balance if permission.state != "Closed" else 0, permission.currency),
        },
        "chargePermissionType": "OneTime",
        "recurringMetadata": {"frequency": None, "amount": None},
        "presentmentCurrency": permission.currency,
    }


def charge_json(charge: SimCharge) -> dict[str, Any]:
    capturing = charge.state in ("CaptureInitiated", "Captured")
    captured = charge.captured if capturing else None
    return {
        "chargeId": charge.charge_id,
        "chargePermissionId": charge.charge_permission_id,
        "chargeAmount": price(charge.amount, charge.currency),
        "captureAmount": price(captured, charge.currency),
        "refundedAmount": price(charge.refunded if capturing else None, charge.currency),
        "convertedAmount": None if captured is None else format_amount(captured, charge.currency),
        "conversionRate": None if captured is None else "1.00",
        "softDescriptor": charge.soft_descriptor,
        "merchantMetadata": None
        if charge.merchant_reference_id is None
        else _metadata(charge.merchant_reference_id, None),
        "providerMetadata": {"providerReferenceId": None},
        "statusDetails": _status(charge.state, charge.reason_code, charge.updated_at),
        "creationTimestamp": stamp(charge.created_at),
        "expirationTimestamp": stamp(charge.expires_at),
        "releaseEnvironment": charge.environment,
    }


def refund_json(refund: SimRefund) -> dict[str, Any]:
    return {
        "refundId": refund.refund_id,
        "chargeId": refund.charge_id,
        "refundAmount": price(refund.amount, refund.currency),
        "softDescriptor": refund.soft_descriptor,
        "creationTimestamp": stamp(refund.created_at),
        "statusDetails": _status(refund.state, refund.reason_code, refund.updated_at),
        "releaseEnvironment": refund.environment,
    }


def dispute_json(dispute: SimDispute) -> dict[str, Any]:
    status = _status(dispute.state, dispute.reason_code, dispute.updated_at)
    status["resolution"] = dispute.resolution
    return {
        "disputeId": dispute.dispute_id,
        "chargeId": dispute.charge_id,
        "releaseEnvironment": dispute.environment,
        "disputeType": "Chargeback",
        "disputeAmount": price(dispute.amount, dispute.currency),
        "filingReason": dispute.filing_reason,
        "statusDetails": status,
        "merchantEvidences": list(dispute.evidences),
        "merchantResponseDeadline": stamp(dispute.deadline),
        "resolutionAuthority": "AmazonPay",
        "creationTimestamp": stamp(dispute.created_at),
    }


def file_json(found: SimFile, upload_url: str) -> dict[str, Any]:
    return {
        "id": found.file_id,
        "type": found.file_type,
        "purpose": "disputeEvidence",
        "size": None if found.content is None else len(found.content),
        "uploadTimestamp": None,
        "url": upload_url,
        "urlExpirationTimestamp": stamp(found.url_expires_at),
    }
