"""Amazon Pay API v2 answers -> Kontor's value objects (`objects.py`), field by field and defensively.

Why separate from the client: these functions are pure (JSON in, frozen dataclass out) and are what the sample
tests exercise. Field names follow the published samples and field tables on developer.amazon.com/docs/
amazon-pay-api-v2/{checkout-session,charge-permission,charge,refund,dispute,reports}.html. A required field
that is missing raises `AmazonPayError(status, "InvalidResponse", ...)`.
"""

from __future__ import annotations

from payments.amazon.objects import (
    AmazonPayError,
    Amount,
    Charge,
    ChargePermission,
    CheckoutSession,
    Disbursement,
    Dispute,
    Fields,
    Refund,
    Report,
)

__all__ = [
    "charge",
    "charge_permission",
    "checkout_session",
    "disbursements_page",
    "dispute",
    "file_upload",
    "refund",
    "report",
    "report_from",
    "reports_page",
]


def checkout_session(body: object, status: int) -> CheckoutSession:
    root = Fields(body, status, "checkoutSession")
    details = root.child("statusDetails")
    if details is None:
        raise AmazonPayError(status, "InvalidResponse", "checkoutSession.statusDetails is missing")
    payment = root.child("paymentDetails")
    metadata, buyer, billing = root.child("merchantMetadata"), root.child("buyer"), root.child("billingAddress")
    return CheckoutSession(
        checkout_session_id=root.text("checkoutSessionId"),
        state=details.text("state"),
        reason_code=details.opt_text("reasonCode"),
        payment_intent=payment.opt_text("paymentIntent") if payment else None,
        charge_amount=payment.opt_amount("chargeAmount") if payment else None,
        can_handle_pending_authorization=payment.flag("canHandlePendingAuthorization") if payment else False,
        constraints=tuple(c.text("constraintId") for c in root.items("constraints")),
        charge_permission_id=root.opt_text("chargePermissionId"),
        charge_id=root.opt_text("chargeId"),
        merchant_reference_id=metadata.opt_text("merchantReferenceId") if metadata else None,
        buyer_name=buyer.opt_text("name") if buyer else None,
        buyer_email=buyer.opt_text("email") if buyer else None,
        billing_address=billing.strings() if billing else None,
    )


def charge_permission(body: object, status: int) -> ChargePermission:
    root = Fields(body, status, "chargePermission")
    details = root.child("statusDetails")
    if details is None:
        raise AmazonPayError(status, "InvalidResponse", "chargePermission.statusDetails is missing")
    limits = root.child("limits")
    return ChargePermission(
        charge_permission_id=root.text("chargePermissionId"),
        state=details.text("state"),
        reasons=tuple(r.text("reasonCode") for r in details.items("reasons")),
        amount_limit=limits.opt_amount("amountLimit") if limits else None,
        amount_balance=limits.opt_amount("amountBalance") if limits else None,
        expires_at=root.opt_time("expirationTimestamp"),
    )


def charge(body: object, status: int) -> Charge:
    root = Fields(body, status, "charge")
    details, metadata = root.child("statusDetails"), root.child("merchantMetadata")
    if details is None:
        raise AmazonPayError(status, "InvalidResponse", "charge.statusDetails is missing")
    return Charge(
        charge_id=root.text("chargeId"),
        charge_permission_id=root.text("chargePermissionId"),
        state=details.text("state"),
        reason_code=details.opt_text("reasonCode"),
        charge_amount=root.amount("chargeAmount"),
        capture_amount=root.opt_amount("captureAmount"),
        refunded_amount=root.opt_amount("refundedAmount"),
        expires_at=root.opt_time("expirationTimestamp"),
        created_at=root.opt_time("creationTimestamp"),
        merchant_reference_id=metadata.opt_text("merchantReferenceId") if metadata is not None else None,
    )


def refund(body: object, status: int) -> Refund:
    root = Fields(body, status, "refund")
    details = root.child("statusDetails")
    if details is None:
        raise AmazonPayError(status, "InvalidResponse", "refund.statusDetails is missing")
    return Refund(
        refund_id=root.text("refundId"),
        charge_id=root.text("chargeId"),
        state=details.text("state"),
        reason_code=details.opt_text("reasonCode"),
        refund_amount=root.amount("refundAmount"),
        created_at=root.opt_time("creationTimestamp"),
    )


def dispute(body: object, status: int) -> Dispute:
    root = Fields(body, status, "dispute")
    details = root.child("statusDetails")
    if details is None:
        raise AmazonPayError(status, "InvalidResponse", "dispute.statusDetails is missing")
    return Dispute(
        dispute_id=root.text("disputeId"),
        charge_id=root.text("chargeId"),
        state=details.text("state"),
        reason_code=details.opt_text("reasonCode"),
        resolution=details.opt_text("resolution"),
        amount=root.amount("disputeAmount"),
        filing_reason=root.opt_text("filingReason"),
        deadline=root.opt_time("merchantResponseDeadline"),
        created_at=root.opt_time("creationTimestamp"),
    )


def file_upload(body: object, status: int) -> tuple[str, str]:
    """The File object of POST /files: (file id, the upload URL). Amazon's field table names the id `id`."""
    root = Fields(body, status, "file")
    file_id = root.opt_text("id") or root.text("fileId")
    return file_id, root.text("url")


def report(body: object, status: int) -> Report:
    return report_from(Fields(body, status, "report"))


def reports_page(body: object, status: int) -> tuple[list[Report], str | None]:
    root = Fields(body, status, "reports")
    return [report_from(item) for item in root.items("reports")], root.opt_text("nextToken") or None


def report_from(item: Fields) -> Report:
    """A Report object, alone (GET /reports/{id}) or inside a list answer."""
    return Report(
        report_id=item.text("reportId"),
        report_type=item.text("reportType"),
        processing_status=item.text("processingStatus"),
        report_document_id=item.opt_text("reportDocumentId"),
        start_time=item.opt_time("startTime"),
        end_time=item.opt_time("endTime"),
        created_time=item.opt_time("createdTime"),
    )


def disbursements_page(body: object, status: int) -> tuple[list[Disbursement], str | None]:
    root = Fields(body, status, "disbursements")
    found = []
    for item in root.items("disbursements"):
        currency, text = item.text("currencyCode"), item.text("amount")
        price = Fields({"amount": text, "currencyCode": currency}, status, "disbursement.amount").as_amount()
        found.append(
            Disbursement(
                settlement_id=item.text("settlementId"),
                amazon_disbursement_reference_id=item.text("amazonDisbursementReferenceId"),
                amount=Amount(price.minor, price.currency),
                transaction_time=item.opt_time("transactionTime"),
                seller_id=item.opt_text("sellerId"),
            )
        )
    return found, root.opt_text("nextToken") or None
