"""XML of the simulator's objects, as Amazon's responses and IPN payloads carry them."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree.ElementTree import Element, SubElement  # building XML only

from ledger.money import format_amount
from payments.amazon.sim_state import SimAuthorization, SimCapture, SimOrder, SimRefund

__all__ = [
    "IPN_NAMESPACE",
    "authorization_xml",
    "capture_xml",
    "chargeback_xml",
    "ids_xml",
    "iso",
    "money_xml",
    "order_reference_xml",
    "refund_xml",
    "status_xml",
]

IPN_NAMESPACE = "https://mws.amazonservices.com/ipn/OffAmazonPayments/2013-01-01"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def money_xml(parent: Element, tag: str, amount: int, currency: str) -> None:
    node = SubElement(parent, tag)
    SubElement(node, "Amount").text = format_amount(amount, currency)
    SubElement(node, "CurrencyCode").text = currency


def status_xml(parent: Element, tag: str, state: str, reason: str | None, at: datetime) -> None:
    node = SubElement(parent, tag)
    SubElement(node, "State").text = state
    SubElement(node, "LastUpdateTimestamp").text = iso(at)
    if reason:
        SubElement(node, "ReasonCode").text = reason


def ids_xml(parent: Element, ids: list[str]) -> None:
    node = SubElement(parent, "IdList")
    for value in ids:
        SubElement(node, "member").text = value


def authorization_xml(auth: SimAuthorization, parent: Element | None = None) -> Element:
    node = Element("AuthorizationDetails") if parent is None else SubElement(parent, "AuthorizationDetails")
    SubElement(node, "AmazonAuthorizationId").text = auth.authorization_id
    SubElement(node, "AuthorizationReferenceId").text = auth.reference_id
    money_xml(node, "AuthorizationAmount", auth.amount, auth.currency)
    money_xml(node, "CapturedAmount", auth.captured, auth.currency)
    money_xml(node, "AuthorizationFee", 0, auth.currency)
    ids_xml(node, auth.capture_ids)
    SubElement(node, "CreationTimestamp").text = iso(auth.created_at)
    SubElement(node, "ExpirationTimestamp").text = iso(auth.expires_at)
    status_xml(node, "AuthorizationStatus", auth.state, auth.reason, auth.created_at)
    SubElement(node, "CaptureNow").text = str(auth.capture_now).lower()
    return node


def capture_xml(capture: SimCapture, parent: Element | None = None) -> Element:
    node = Element("CaptureDetails") if parent is None else SubElement(parent, "CaptureDetails")
    SubElement(node, "AmazonCaptureId").text = capture.capture_id
    SubElement(node, "CaptureReferenceId").text = capture.reference_id
    money_xml(node, "CaptureAmount", capture.amount, capture.currency)
    money_xml(node, "RefundedAmount", capture.refunded, capture.currency)
    money_xml(node, "CaptureFee", 0, capture.currency)
    ids_xml(node, capture.refund_ids)
    SubElement(node, "CreationTimestamp").text = iso(capture.created_at)
    status_xml(node, "CaptureStatus", capture.state, capture.reason, capture.created_at)
    return node


def refund_xml(refund: SimRefund, parent: Element | None = None) -> Element:
    node = Element("RefundDetails") if parent is None else SubElement(parent, "RefundDetails")
    SubElement(node, "AmazonRefundId").text = refund.refund_id
    SubElement(node, "RefundReferenceId").text = refund.reference_id
    SubElement(node, "RefundType").text = refund.refund_type
    money_xml(node, "RefundAmount", refund.amount, refund.currency)
    money_xml(node, "FeeRefunded", 0, refund.currency)
    SubElement(node, "CreationTimestamp").text = iso(refund.created_at)
    status_xml(node, "RefundStatus", refund.state, refund.reason, refund.created_at)
    return node


def chargeback_xml(chargeback_id: str, capture: SimCapture, amount: str, reason: str) -> Element:
    node = Element("ChargebackDetails")
    SubElement(node, "AmazonChargebackId").text = chargeback_id
    SubElement(node, "AmazonOrderReferenceId").text = capture.order_reference_id
    SubElement(node, "AmazonCaptureReferenceId").text = capture.reference_id
    SubElement(node, "CreationTimestamp").text = capture.created_at.isoformat()
    amount_node = SubElement(node, "ChargebackAmount")
    SubElement(amount_node, "Amount").text = amount
    SubElement(amount_node, "CurrencyCode").text = capture.currency
    SubElement(node, "ChargebackState").text = "RECEIVED"
    SubElement(node, "ChargebackReason").text = reason or "Generic Service Chargeback"
    return node


def order_reference_xml(order: SimOrder, at: datetime, tag: str = "OrderReferenceDetails") -> Element:
    node = Element(tag)
    SubElement(node, "AmazonOrderReferenceId").text = order.order_reference_id
    money_xml(node, "OrderTotal", order.amount, order.currency)
    status_xml(node, "OrderReferenceStatus", order.state, order.reason, at)
    return node
