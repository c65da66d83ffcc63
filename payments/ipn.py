"""Amazon Pay IPNs: verify, store, acknowledge fast, process exactly once.

Receiving (the HTTP handler) does only what must happen before answering: check the SNS envelope and
signature and the topic, find the merchant by SellerId, and store the raw message keyed by its
notification id (a duplicate or replay is acknowledged and ignored). Processing runs right after, in
the background, and again from a job for anything left unprocessed: it re-reads the object at Amazon
(an IPN is a trigger, not the truth) and applies it through the same idempotent bookings the API uses.
Chargebacks have no Get operation; they are booked from the verified notification itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from defusedxml.ElementTree import fromstring

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, Forbidden, PayloadTooLarge
from ledger.money import parse_amount
from ledger.tenancy import get_business
from payments.amazon.client import AmazonPayError
from payments.amazon.sns import SnsError
from payments.bookings import record_capture, record_refund
from payments.disputes import record_chargeback
from payments.orders import record_authorization
from payments.settings import load_settings
from payments.store import load_order

if TYPE_CHECKING:
    from ledger.db import Connection
    from payments.orders import Payments

__all__ = ["IPN_BYTES_MAX", "process_ipn", "process_pending_ipns", "receive_ipn"]

log = logging.getLogger("kontor.ipn")
IPN_BYTES_MAX = 262_144


def _topic_allowed(account: str) -> Any:
    def allowed(arn: str) -> bool:
        parts = arn.split(":")
        return len(parts) == 6 and parts[:3] == ["arn", "aws", "sns"] and parts[4] == account and bool(parts[5])

    return allowed


async def receive_ipn(ctx: Kontor, rt: Payments, raw: bytes, headers: Mapping[str, str]) -> list[tuple[int, str]]:
    """Verify and store one IPN; returns (merchant, notification id) pairs that are new and need processing."""
    if len(raw) > IPN_BYTES_MAX:
        raise PayloadTooLarge("ipn_too_large", f"an IPN is at most {IPN_BYTES_MAX} bytes")
    try:
        envelope = json.loads(raw)
        message = json.loads(envelope["Message"]) if isinstance(envelope, dict) else None
    except (ValueError, KeyError, TypeError):
        raise BadRequest("ipn_malformed", "the body is not an SNS notification envelope") from None
    if headers.get("x-amz-sns-message-type") != "Notification" or not isinstance(message, dict):
        raise BadRequest("ipn_malformed", "x-amz-sns-message-type must be Notification")
    if headers.get("x-amz-sns-topic-arn") != envelope.get("TopicArn"):
        raise Forbidden("ipn_rejected", "the topic header does not match the signed topic")
    try:
        await rt.sns.verify(envelope, _topic_allowed(rt.settings.amazon_pay_topic_account))
    except SnsError as exc:
        log.warning("ipn rejected", extra={"reason": str(exc)})
        raise Forbidden("ipn_rejected", f"the notification is not a genuine Amazon Pay IPN: {exc}") from None
    seller_id, notification_id = str(message.get("SellerId", "")), str(message.get("NotificationReferenceId", ""))
    if not seller_id or not notification_id or not envelope["TopicArn"].endswith(seller_id):
        raise Forbidden("ipn_rejected", "the notification's SellerId does not match its topic")
    merchants = await ctx.pool.fetch(
        "SELECT DISTINCT merchant_id FROM amazon_pay_settings WHERE seller_id = $1", seller_id
    )
    if not merchants:
        raise Forbidden("ipn_rejected", "no merchant has Amazon Pay set up for this seller")
    notification_type = str(message.get("NotificationType", "")).replace(" ", "")
    new = []
    for row in merchants:
        stored = await ctx.pool.fetchval(
            "INSERT INTO ipn_messages (merchant_id, notification_id, seller_id, notification_type, raw) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, notification_id) DO NOTHING RETURNING true",
            row["merchant_id"],
            notification_id,
            seller_id,
            notification_type,
            raw.decode(),
        )
        if stored:
            new.append((row["merchant_id"], notification_id))
    return new


def _details(message: dict[str, Any]) -> Any:
    root = fromstring(message["NotificationData"].encode(), forbid_dtd=True)
    for element in root.iter():
        if "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


async def process_ipn(ctx: Kontor, rt: Payments, merchant_id: int, notification_id: str) -> str | None:
    """Apply one stored IPN; returns the outcome, or None when another worker has it or it is done."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE ipn_messages SET attempts = attempts + 1 WHERE merchant_id = $1 AND notification_id = $2 "
            "AND processed_at IS NULL AND ctid = (SELECT ctid FROM ipn_messages WHERE merchant_id = $1 "
            "AND notification_id = $2 FOR UPDATE SKIP LOCKED) RETURNING notification_type, raw",
            merchant_id,
            notification_id,
        )
    if row is None:
        return None
    try:
        outcome = await _apply(
            ctx, rt, merchant_id, row["notification_type"], json.loads(json.loads(row["raw"])["Message"])
        )
    except AmazonPayError as exc:
        log.warning("ipn processing deferred", extra={"notification_id": notification_id, "code": exc.code})
        return f"deferred: {exc.code}"
    await ctx.pool.execute(
        "UPDATE ipn_messages SET processed_at = now(), outcome = $3 WHERE merchant_id = $1 AND notification_id = $2",
        merchant_id,
        notification_id,
        outcome,
    )
    return outcome


async def _order_of(ctx: Kontor, merchant_id: int, object_id: str) -> tuple[Business, Any] | None:
    """The business code and order an Amazon object belongs to (its id starts with the order reference)."""
    order_reference_id = object_id.rsplit("-", 1)[0] if object_id.count("-") >= 3 else object_id
    row = await ctx.pool.fetchrow(
        "SELECT business, order_ref FROM orders WHERE merchant_id = $1 AND amazon_order_reference_id = $2",
        merchant_id,
        order_reference_id,
    )
    if row is None:
        return None
    business = await get_business(ctx, merchant_id, row["business"])
    async with ctx.pool.acquire() as conn:
        return business, await load_order(conn, business, row["order_ref"])


async def _apply(ctx: Kontor, rt: Payments, merchant_id: int, kind: str, message: dict[str, Any]) -> str:
    node = _details(message).find("*")
    applier = _APPLIERS.get(kind)
    if node is None or applier is None:
        return f"ignored: {kind}"
    if kind == "ChargebackDetailedNotification":
        object_id = node.findtext("AmazonOrderReferenceId") or ""
    else:
        object_id = next((c.text or "" for c in node if c.tag.startswith("Amazon") and c.tag.endswith("Id")), "")
    found = await _order_of(ctx, merchant_id, object_id)
    if found is None:
        return f"ignored: no order for {object_id}"
    business, order = found
    creds = (await load_settings(ctx, business)).credentials
    async with ctx.pool.acquire() as conn, conn.transaction():
        return await applier(ctx, rt, conn, business, order, creds, object_id, node)


async def _refund(
    ctx: Kontor, rt: Payments, conn: Connection, business: Business, order: Any, creds: Any, object_id: str, node: Any
) -> str:
    refund = await rt.gateway.get_refund_details(creds, object_id, business.currency)
    known = await record_refund(ctx, conn, business, refund, on=ctx.today())
    return f"refund {refund.state}" if known else "refund unknown to Kontor"


async def _capture(
    ctx: Kontor, rt: Payments, conn: Connection, business: Business, order: Any, creds: Any, object_id: str, node: Any
) -> str:
    capture = await rt.gateway.get_capture_details(creds, object_id, business.currency)
    await record_capture(ctx, conn, business, order, capture, authorization_id=None, on=ctx.today())
    return f"capture {capture.state}"


async def _authorization(
    ctx: Kontor, rt: Payments, conn: Connection, business: Business, order: Any, creds: Any, object_id: str, node: Any
) -> str:
    auth = await rt.gateway.get_authorization_details(creds, object_id, business.currency)
    await record_authorization(conn, business, order.order_ref, auth)
    return f"authorization {auth.state}"


async def _chargeback(
    ctx: Kontor, rt: Payments, conn: Connection, business: Business, order: Any, creds: Any, object_id: str, node: Any
) -> str:
    amount = parse_amount((node.findtext("ChargebackAmount/Amount") or "0").strip(), business.currency)
    booked = await record_chargeback(
        ctx,
        conn,
        business,
        chargeback_id=node.findtext("AmazonChargebackId") or "",
        order_reference_id=object_id,
        capture_reference=node.findtext("AmazonCaptureReferenceId"),
        amount=amount,
        reason=node.findtext("ChargebackReason"),
        on=ctx.today(),
    )
    return "chargeback booked" if booked else "chargeback known"


async def _order_reference(
    ctx: Kontor, rt: Payments, conn: Connection, business: Business, order: Any, creds: Any, object_id: str, node: Any
) -> str:
    """Amazon opened, suspended (the buyer's payment method failed), closed or canceled the order reference.

    Recorded on the order as Amazon's state; the order's own status is left alone (a one-step order closed
    at Amazon is still invoiced, and open authorizations of a closed order reference can be captured)."""
    details = await rt.gateway.get_order_reference_details(creds, object_id, business.currency)
    await conn.execute(
        "UPDATE orders SET amazon_state = $4, amazon_state_reason = $5 WHERE merchant_id = $1 AND business = $2 "
        "AND order_ref = $3",
        business.merchant_id,
        business.code,
        order.order_ref,
        details.state,
        details.reason,
    )
    return f"order reference {details.state}"


_APPLIERS: dict[str, Callable[..., Awaitable[str]]] = {
    "OrderReferenceNotification": _order_reference,
    "PaymentRefund": _refund,
    "PaymentCapture": _capture,
    "PaymentAuthorize": _authorization,
    "ChargebackDetailedNotification": _chargeback,
}


async def process_pending_ipns(ctx: Kontor, rt: Payments, *, older_than_s: float = 0) -> int:
    rows = await ctx.pool.fetch(
        "SELECT merchant_id, notification_id FROM ipn_messages WHERE processed_at IS NULL "
        "AND received_at <= now() - make_interval(secs => $1) AND attempts < 50 ORDER BY received_at LIMIT 500",
        older_than_s,
    )
    done = 0
    for row in rows:
        if await process_ipn(ctx, rt, row["merchant_id"], row["notification_id"]):
            done += 1
    return done
