"""The simulator's after-sale side: Refunds, Disputes (chargebacks), evidence Files, and v1 objects seen through v2.

Pure functions over a `SimMerchant`, like `sim_state.py`; each state change of a refund or dispute queues an IPN
(REFUND, CHARGEBACK) and each money movement a settlement event.

Rules (developer.amazon.com/docs/amazon-pay-api-v2/{refund,dispute,file}.html; amazon-pay-checkout/
manage-disputes.html; docs/amazon-pay.md §2, §4):
- Refund: only on a Captured charge (422 InvalidChargeStatus); always RefundInitiated first, then Refunded or
  Declined (AmazonRejected, ProcessingFailure) when processed; at most 10 per charge (422
  TransactionCountExceeded); refunds (initiated + completed) + disputed <= captured + headroom (400
  TransactionAmountExceeded).
- Dispute: filed on a Captured charge within the same allowance; ActionRequired/MerchantResponseRequired with a
  deadline 11 days out; contest (evidence) -> UnderReview; resolution BuyerWon | MerchantWon | NoFault ->
  Resolved; an unanswered deadline -> Closed/MerchantResponseDeadlineExpired, BuyerWon.
- File: `POST /files {type, purpose: disputeEvidence}` -> a File with an upload URL valid 15 minutes; the bytes
  are PUT there; a contest may only cite files whose bytes arrived.

Choices where Amazon is silent: the dispute id is the CHARGEBACK IPN's ObjectId (`<cp>-B123456`); contesting a
dispute that is not ActionRequired answers 422 InvalidDisputeStatus; NoFault returns the amount to the merchant
like MerchantWon (Amazon bears it), the chargeback fee stays; a refund's settlement SellerReferenceId is its
charge's merchantReferenceId. v1 objects (`create_legacy_order`): the Order Reference id is the Charge
Permission id, an open Authorization (`-A0…`) is a Charge that can be captured or canceled, a completed Capture
(`-C0…`) a Captured Charge that can be refunded (Amazon's "Upgrading to Checkout v2" page, managing v1 objects);
v1 captures are taken as settled before the simulation started (no settlement event).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from payments.amazon.sim_model import (
    AUTHORIZATION_TTL,
    DISPUTE_RESPONSE_TTL,
    PERMISSION_TTL,
    REFUNDS_PER_CHARGE_MAX,
    Buyer,
    SettlementEvent,
    SimCharge,
    SimDispute,
    SimError,
    SimFile,
    SimMerchant,
    SimPermission,
    SimRefund,
    headroom,
)
from payments.amazon.sim_state import find_charge

__all__ = [
    "EVIDENCE_TYPES",
    "FILE_TYPES",
    "FILING_REASONS",
    "RESOLUTIONS",
    "contest_dispute",
    "create_file",
    "create_legacy_order",
    "create_refund",
    "file_dispute",
    "find_dispute",
    "find_refund",
    "process_refunds",
    "resolve_dispute",
]

FILING_REASONS = (
    "ProductNotReceived",
    "ProductUnacceptable",
    "ProductNoLongerNeeded",
    "CreditNotProcessed",
    "Overcharged",
    "DuplicateCharge",
    "SubscriptionCancelled",
    "Unrecognized",
    "Fraudulent",
    "Other",
)
EVIDENCE_TYPES = (
    "ProductDescription",
    "Receipt",
    "CancellationPolicy",
    "CustomerSignature",
    "TrackingNumber",
    "CarrierName",
    "DeviceId",
    "DeviceName",
    "DownloadDateTime",
    "Other",
)
RESOLUTIONS = ("BuyerWon", "MerchantWon", "NoFault")
FILE_TYPES = ("csv", "pdf", "xls", "xlsx", "doc", "docx", "ods", "odt", "jpg", "jpeg", "png", "txt")
EVIDENCES_MAX = 20
EVIDENCE_TEXT_CHARS_MAX = 5000
UPLOAD_URL_TTL = timedelta(minutes=15)


def _allowance_left(charge: SimCharge) -> int:
    captured = charge.captured or 0
    return captured + headroom(captured, charge.currency) - charge.refunded - charge.refunding - charge.disputed


def create_refund(
    merchant: SimMerchant,
    environment: str,
    charge_id: str,
    amount: int,
    currency: str,
    soft_descriptor: str | None,
    now: datetime,
) -> SimRefund:
    charge = find_charge(merchant, environment, charge_id, now)
    if charge.state != "Captured":
        raise SimError(422, "InvalidChargeStatus", f"the Charge is {charge.state}; only Captured ones are refunded")
    if currency != charge.currency:
        raise SimError(400, "CurrencyMismatch", f"the Charge is in {charge.currency}")
    if len(charge.refund_ids) >= REFUNDS_PER_CHARGE_MAX:
        raise SimError(422, "TransactionCountExceeded", f"{REFUNDS_PER_CHARGE_MAX} refunds were created")
    if amount > _allowance_left(charge):
        raise SimError(400, "TransactionAmountExceeded", "refunds would exceed the captured amount + allowance")
    merchant.check_room(merchant.refunds)
    refund = SimRefund(
        refund_id=merchant.child_id(charge.charge_permission_id, "R"),
        charge_id=charge.charge_id,
        charge_permission_id=charge.charge_permission_id,
        environment=environment,
        amount=amount,
        currency=currency,
        created_at=now,
        updated_at=now,
        soft_descriptor=soft_descriptor,
        decline_reason=merchant.armed_declines.pop("Refund", None),
    )
    merchant.refunds[refund.refund_id] = refund
    charge.refund_ids.append(refund.refund_id)
    charge.refunding += amount
    merchant.notify("REFUND", refund.refund_id, refund.charge_permission_id)
    return refund


def find_refund(merchant: SimMerchant, environment: str, refund_id: str) -> SimRefund:
    refund = merchant.refunds.get(refund_id)
    if refund is None or refund.environment != environment:
        raise SimError(404, "ResourceNotFound", f"Refund {refund_id} does not exist")
    return refund


def process_refunds(merchant: SimMerchant, declines: dict[str, str], now: datetime) -> list[SimRefund]:
    """Amazon processes every RefundInitiated refund: Refunded, or Declined (armed, or named in `declines`)."""
    changed = []
    for refund in merchant.refunds.values():
        if refund.state != "RefundInitiated":
            continue
        charge = merchant.charges[refund.charge_id]
        charge.refunding -= refund.amount
        reason = declines.get(refund.refund_id) or refund.decline_reason
        if reason:
            refund.state, refund.reason_code = "Declined", reason
        else:
            refund.state = "Refunded"
            charge.refunded += refund.amount
            merchant.events.append(
                SettlementEvent(
                    now,
                    "Refund",
                    refund.refund_id,
                    charge.merchant_reference_id or "",
                    refund.charge_permission_id,
                    -refund.amount,
                )
            )
        refund.updated_at = now
        merchant.notify("REFUND", refund.refund_id, refund.charge_permission_id)
        changed.append(refund)
    return changed


def file_dispute(merchant: SimMerchant, charge_id: str, amount: int, filing_reason: str, now: datetime) -> SimDispute:
    """A buyer's chargeback reaches Amazon: the merchant is debited the amount and the chargeback fee."""
    charge = merchant.charges.get(charge_id)
    if charge is None:
        raise SimError(404, "ResourceNotFound", f"Charge {charge_id} does not exist")
    if charge.state != "Captured":
        raise SimError(422, "InvalidChargeStatus", f"the Charge is {charge.state}, not Captured")
    if filing_reason not in FILING_REASONS:
        raise SimError(400, "InvalidParameterValue", f"filingReason must be one of {', '.join(FILING_REASONS)}")
    if amount > _allowance_left(charge):
        raise SimError(400, "TransactionAmountExceeded", "the chargeback exceeds what the charge allows")
    merchant.check_room(merchant.disputes)
    dispute = SimDispute(
        dispute_id=merchant.child_id(charge.charge_permission_id, "B"),
        charge_id=charge.charge_id,
        charge_permission_id=charge.charge_permission_id,
        environment=charge.environment,
        amount=amount,
        currency=charge.currency,
        filing_reason=filing_reason,
        created_at=now,
        updated_at=now,
        deadline=now + DISPUTE_RESPONSE_TTL,
    )
    merchant.disputes[dispute.dispute_id] = dispute
    charge.disputed += amount
    merchant.events.append(_chargeback_event(charge, dispute, -amount, -merchant.chargeback_fee_minor, now))
    merchant.notify("CHARGEBACK", dispute.dispute_id, dispute.charge_permission_id)
    return dispute


def _chargeback_event(charge: SimCharge, dispute: SimDispute, amount: int, fee: int, now: datetime) -> SettlementEvent:
    return SettlementEvent(
        now,
        "Chargeback",
        dispute.dispute_id,
        charge.merchant_reference_id or "",
        charge.charge_permission_id,
        amount,
        fee_fixed=fee,
    )


def find_dispute(merchant: SimMerchant, environment: str, dispute_id: str, now: datetime) -> SimDispute:
    dispute = merchant.disputes.get(dispute_id)
    if dispute is None or dispute.environment != environment:
        raise SimError(404, "ResourceNotFound", f"Dispute {dispute_id} does not exist")
    if dispute.state == "ActionRequired" and now >= dispute.deadline:
        dispute.state, dispute.reason_code, dispute.resolution = "Closed", "MerchantResponseDeadlineExpired", "BuyerWon"
        dispute.updated_at = now
        merchant.notify("CHARGEBACK", dispute.dispute_id, dispute.charge_permission_id)
    return dispute


def contest_dispute(
    merchant: SimMerchant,
    environment: str,
    dispute_id: str,
    evidences: list[tuple[str, str | None, str | None]],
    now: datetime,
) -> SimDispute:
    """`evidences`: (evidenceType, fileId, evidenceText) each."""
    dispute = find_dispute(merchant, environment, dispute_id, now)
    if dispute.state != "ActionRequired":
        raise SimError(422, "InvalidDisputeStatus", f"the Dispute is {dispute.state}, not ActionRequired")
    if not 1 <= len(evidences) <= EVIDENCES_MAX:
        raise SimError(400, "InvalidParameterValue", f"merchantEvidences must hold 1-{EVIDENCES_MAX} items")
    for evidence_type, file_id, text in evidences:
        _check_evidence(merchant, environment, evidence_type, file_id, text)
    dispute.evidences = [{"evidenceType": t, "fileId": f, "evidenceText": x} for t, f, x in evidences]
    dispute.state, dispute.reason_code, dispute.updated_at = "UnderReview", None, now
    merchant.notify("CHARGEBACK", dispute.dispute_id, dispute.charge_permission_id)
    return dispute


def _check_evidence(
    merchant: SimMerchant, environment: str, evidence_type: str, file_id: str | None, text: str | None
) -> None:
    if evidence_type not in EVIDENCE_TYPES:
        raise SimError(400, "InvalidParameterValue", f"evidenceType must be one of {', '.join(EVIDENCE_TYPES)}")
    if file_id is None and not text:
        raise SimError(400, "MissingParameterValue", "each evidence needs fileId or evidenceText")
    if text is not None and len(text) > EVIDENCE_TEXT_CHARS_MAX:
        raise SimError(400, "InvalidParameterValue", f"evidenceText is limited to {EVIDENCE_TEXT_CHARS_MAX} chars")
    if file_id is not None:
        found = merchant.files.get(file_id)
        if found is None or found.environment != environment or found.content is None:
            raise SimError(400, "InvalidParameterValue", f"fileId {file_id} is not an uploaded file")


def resolve_dispute(merchant: SimMerchant, dispute_id: str, resolution: str, now: datetime) -> SimDispute:
    dispute = merchant.disputes.get(dispute_id)
    if dispute is None:
        raise SimError(404, "ResourceNotFound", f"Dispute {dispute_id} does not exist")
    if resolution not in RESOLUTIONS:
        raise SimError(400, "InvalidParameterValue", f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if dispute.state in ("Resolved", "Closed"):
        raise SimError(422, "InvalidDisputeStatus", f"the Dispute is already {dispute.state}")
    dispute.state, dispute.reason_code, dispute.resolution = "Resolved", "InvestigatorResolved", resolution
    dispute.updated_at = now
    if resolution in ("MerchantWon", "NoFault"):
        charge = merchant.charges[dispute.charge_id]
        charge.disputed -= dispute.amount
        merchant.events.append(_chargeback_event(charge, dispute, dispute.amount, 0, now))
    merchant.notify("CHARGEBACK", dispute.dispute_id, dispute.charge_permission_id)
    return dispute


def create_file(merchant: SimMerchant, environment: str, file_type: str, purpose: str, now: datetime) -> SimFile:
    if file_type not in FILE_TYPES:
        raise SimError(400, "InvalidParameterValue", f"type must be one of {', '.join(FILE_TYPES)}")
    if purpose != "disputeEvidence":
        raise SimError(400, "InvalidParameterValue", "purpose must be disputeEvidence")
    merchant.check_room(merchant.files)
    found = SimFile(
        file_id=f"amzn1.file.{merchant.new_session_id()}",
        environment=environment,
        file_type=file_type,
        created_at=now,
        url_expires_at=now + UPLOAD_URL_TTL,
    )
    merchant.files[found.file_id] = found
    merchant.uploads[found.upload_token] = found.file_id
    return found


def create_legacy_order(
    merchant: SimMerchant,
    environment: str,
    *,
    amount: int,
    currency: str,
    authorized: int | None,
    captured: int | None,
    merchant_reference_id: str | None,
    now: datetime,
) -> tuple[SimPermission, SimCharge | None, SimCharge | None]:
    """What a v1 integration left behind: an Order Reference with an open Authorization and/or a Capture."""
    merchant.check_room(merchant.permissions)
    permission = SimPermission(
        charge_permission_id=merchant.new_permission_id(environment),
        environment=environment,
        created_at=now,
        updated_at=now,
        expires_at=now + PERMISSION_TTL,
        currency=currency,
        order_amount=amount,
        amount_limit=amount + headroom(amount, currency),
        buyer=Buyer(),
        merchant_reference_id=merchant_reference_id,
        legacy=True,
    )
    merchant.permissions[permission.charge_permission_id] = permission
    auth = None if authorized is None else _legacy_charge(merchant, permission, "A", authorized, None, now)
    capture = None if captured is None else _legacy_charge(merchant, permission, "C", captured, captured, now)
    return permission, auth, capture


def _legacy_charge(
    merchant: SimMerchant, permission: SimPermission, letter: str, amount: int, captured: int | None, now: datetime
) -> SimCharge:
    charge = SimCharge(
        charge_id=f"{permission.charge_permission_id}-{letter}0{merchant.next_serial() % 10**5:05d}",
        charge_permission_id=permission.charge_permission_id,
        environment=permission.environment,
        amount=amount,
        currency=permission.currency,
        created_at=now,
        updated_at=now,
        state="Captured" if captured is not None else "Authorized",
        merchant_reference_id=permission.merchant_reference_id,
        authorized_at=now,
        expires_at=now + AUTHORIZATION_TTL,
        captured=captured,
    )
    merchant.charges[charge.charge_id] = charge
    permission.charge_ids.append(charge.charge_id)
    return charge
