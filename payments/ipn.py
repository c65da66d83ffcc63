"""Amazon Pay IPNs (v2): verify, store, acknowledge fast, apply each exactly once without blocking the others.

Receiving (the public HTTP handler) does only what must happen before answering 200, cheapest check first: the
SNS envelope's shape, the topic (an AWS account on the allow-list: Amazon publishes live chargebacks from
another account than payment notifications), the Amazon merchant the message names (one connected business
code, `amazon_pay_accounts`), then the SNS signature (its certificate fetched once per URL, cached with a bound);
the raw message is stored keyed by its NotificationId (a duplicate or replay is acknowledged and ignored).

Applying runs right after in the background, and from the `amazon-pay-ipns` job for anything left: a v2 IPN
carries no state (developer.amazon.com/docs/amazon-pay-checkout/set-up-instant-payment-notifications.html), so
the object is read at Amazon first (outside any transaction), then applied in one short transaction
(payments.ipn_apply) through the same idempotent bookings the API uses. A message is claimed with a lease, not a
lock held over the network: the claim increments `attempts`, and that number is the claim's token: the booking's
transaction marks the message processed only while `attempts` still has it, and so do the deferral and the
ignoring. A worker whose lease ran out (LEASE_S covers the Amazon calls with their retries) and whose message
another worker claimed since changes nothing; its booking rolls back. One that cannot be applied is retried with
backoff while Amazon is out of reach, or recorded as ignored with its reason; either way the ones behind it go on,
and so they do when recording that fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NamedTuple

import msgspec

from ledger.context import Kontor
from ledger.errors import BadRequest, Forbidden, PayloadTooLarge
from payments.amazon.client import AmazonPayError
from payments.amazon.sns import SnsError
from payments.ipn_apply import ClaimLost, Ignored, Later, apply_notification
from payments.runtime import Payments

__all__ = [
    "ATTEMPTS_MAX",
    "IPN_BYTES_MAX",
    "LEASE_S",
    "Claim",
    "claim_ipn",
    "process_ipn",
    "process_pending_ipns",
    "receive_ipn",
]

log = logging.getLogger("kontor.ipn")
IPN_BYTES_MAX = 262_144
ATTEMPTS_MAX = 20  # with the backoff below (2 s doubling, at most an hour): about ten hours of retries
BACKOFF_S_MAX = 3600.0
LEASE_S = 300  # a handler makes at most 3 Amazon calls, each at most attempts_max x timeout_s (4 x 10 s) plus backoff
BATCH_MAX = 500


class _Envelope(msgspec.Struct):
    Type: str
    Message: str
    TopicArn: str
    MessageId: str = ""


def _parse(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope and its inner message (both JSON objects); 400 otherwise."""
    try:
        envelope = msgspec.json.decode(raw)
        shape = msgspec.convert(envelope, _Envelope)
        message = msgspec.json.decode(shape.Message)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError):
        raise BadRequest("ipn_malformed", "the body is not an SNS notification envelope") from None
    if not isinstance(envelope, dict) or not isinstance(message, dict):
        raise BadRequest("ipn_malformed", "the body is not an SNS notification envelope")
    return envelope, message


def _topic_allowed(accounts: frozenset[str]) -> Any:
    def allowed(arn: str) -> bool:
        parts = arn.split(":")
        return len(parts) == 6 and parts[:3] == ["arn", "aws", "sns"] and parts[4] in accounts and bool(parts[5])

    return allowed


def _identity(message: Mapping[str, Any]) -> tuple[str, str, str]:
    """(Amazon merchant id, notification id, type) of a v2 message, or of a Checkout v1 one (kept, not applied)."""
    if "NotificationId" in message or "MerchantID" in message:
        return (
            str(message.get("MerchantID", "")),
            str(message.get("NotificationId", "")),
            str(message.get("ObjectType", "")),
        )
    kind = str(message.get("NotificationType", "")).replace(" ", "")
    return str(message.get("SellerId", "")), str(message.get("NotificationReferenceId", "")), f"v1:{kind}"


async def receive_ipn(ctx: Kontor, rt: Payments, raw: bytes, headers: Mapping[str, str]) -> list[tuple[int, str]]:
    """Verify and store one IPN; returns the (merchant, notification id) pairs that are new and need applying."""
    if len(raw) > IPN_BYTES_MAX:
        raise PayloadTooLarge("ipn_too_large", f"an IPN is at most {IPN_BYTES_MAX} bytes")
    if headers.get("x-amz-sns-message-type") != "Notification":
        raise BadRequest("ipn_malformed", "x-amz-sns-message-type must be Notification")
    envelope, message = _parse(raw)
    if headers.get("x-amz-sns-topic-arn") != envelope.get("TopicArn"):
        raise Forbidden("ipn_rejected", "the topic header does not match the signed topic")
    if not _topic_allowed(rt.settings.topic_accounts())(envelope["TopicArn"]):
        raise Forbidden("ipn_rejected", "the topic is not one of Amazon Pay's (KONTOR_AMAZON_PAY_TOPIC_ACCOUNTS)")
    amazon_merchant_id, notification_id, kind = _identity(message)
    if not amazon_merchant_id or not notification_id or len(notification_id) > 200:
        raise BadRequest("ipn_malformed", "the message names no merchant or no notification id")
    owner = await ctx.pool.fetchrow(
        "SELECT merchant_id, business FROM amazon_pay_accounts WHERE amazon_merchant_id = $1", amazon_merchant_id
    )
    if owner is None:
        raise Forbidden("ipn_rejected", "no business code has Amazon Pay connected for this merchant")
    try:
        await rt.sns.verify(envelope, lambda arn: True)  # the topic was checked above
    except SnsError as exc:
        log.warning("ipn rejected", extra={"reason": str(exc)})
        raise Forbidden("ipn_rejected", f"the notification is not a genuine Amazon Pay IPN: {exc}") from None
    stored = await ctx.pool.fetchval(
        "INSERT INTO ipn_messages (merchant_id, notification_id, seller_id, notification_type, raw, object_id) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id, notification_id) DO NOTHING RETURNING true",
        owner["merchant_id"],
        notification_id,
        amazon_merchant_id,
        kind[:100],
        raw.decode(),
        str(message.get("ObjectId", ""))[:200] or None,
    )
    return [(owner["merchant_id"], notification_id)] if stored else []


class Claim(NamedTuple):
    """A stored message taken for LEASE_S seconds; `attempt` (1, 2, ...) is the claim's token."""

    notification_type: str
    raw: str  # the SNS envelope as received
    attempt: int


async def claim_ipn(ctx: Kontor, merchant_id: int, notification_id: str) -> Claim | None:
    """Take the message for LEASE_S seconds (None: done, not due, or another worker's lease holds it)."""
    row = await ctx.pool.fetchrow(
        "UPDATE ipn_messages SET attempts = attempts + 1, claimed_until = now() + make_interval(secs => $3) "
        "WHERE merchant_id = $1 AND notification_id = $2 AND state = 'pending' AND next_attempt_at <= now() "
        "AND (claimed_until IS NULL OR claimed_until < now()) RETURNING notification_type, raw, attempts",
        merchant_id,
        notification_id,
        LEASE_S,
    )
    return None if row is None else Claim(row["notification_type"], row["raw"], row["attempts"])


async def process_ipn(ctx: Kontor, rt: Payments, merchant_id: int, notification_id: str) -> str | None:
    """Apply one stored IPN; returns the outcome, or None when it is not this worker's to apply now."""
    claimed = await claim_ipn(ctx, merchant_id, notification_id)
    if claimed is None:
        return None
    attempts = claimed.attempt
    try:
        return await apply_notification(
            ctx, rt, merchant_id, notification_id, claimed.notification_type, claimed.raw, attempts
        )
    except ClaimLost as exc:
        log.warning("ipn claim lost", extra={"notification_id": notification_id, "reason": str(exc)})
        return None
    except Exception as exc:
        return await _not_applied(ctx, merchant_id, notification_id, attempts, exc)


async def _not_applied(
    ctx: Kontor, merchant_id: int, notification_id: str, attempts: int, exc: Exception
) -> str | None:
    """Ignored: recorded as ignored; Amazon refusing the read: ignored; Amazon out of reach or Later: retried
    with backoff; a defect: retried too (it must not stop the queue), its traceback logged."""
    if isinstance(exc, Ignored):
        return await _finish(ctx, merchant_id, notification_id, attempts, "ignored", f"ignored: {exc}")
    if isinstance(exc, AmazonPayError):
        why = f"{exc.reason_code}: {exc.message}"
        if exc.reachable:
            return await _finish(
                ctx, merchant_id, notification_id, attempts, "ignored", f"ignored: Amazon answered {why}"
            )
        return await _later(ctx, merchant_id, notification_id, attempts, why)
    if isinstance(exc, Later):
        return await _later(ctx, merchant_id, notification_id, attempts, str(exc))
    log.error("ipn processing failed", extra={"notification_id": notification_id}, exc_info=exc)
    return await _later(ctx, merchant_id, notification_id, attempts, f"error: {type(exc).__name__}")


async def _finish(
    ctx: Kontor, merchant_id: int, notification_id: str, attempts: int, state: str, outcome: str
) -> str | None:
    """Record the final state under the claim numbered `attempts`; None when another worker claimed it since."""
    mine = await ctx.pool.fetchval(
        "UPDATE ipn_messages SET state = $3, outcome = $4, processed_at = now(), claimed_until = NULL "
        "WHERE merchant_id = $1 AND notification_id = $2 AND state = 'pending' AND attempts = $5 RETURNING true",
        merchant_id,
        notification_id,
        state,
        outcome[:1000],
        attempts,
    )
    return outcome if mine else None


async def _later(ctx: Kontor, merchant_id: int, notification_id: str, attempts: int, why: str) -> str | None:
    """Retry after a backoff (the claim numbered `attempts` ends); None when another worker claimed it since."""
    if attempts >= ATTEMPTS_MAX:
        return await _finish(
            ctx, merchant_id, notification_id, attempts, "ignored", f"ignored after {attempts} attempts: {why}"
        )
    delay = timedelta(seconds=min(BACKOFF_S_MAX, 2.0 * 2 ** (attempts - 1)))
    mine = await ctx.pool.fetchval(
        "UPDATE ipn_messages SET next_attempt_at = now() + $3, claimed_until = NULL, last_error = $4 "
        "WHERE merchant_id = $1 AND notification_id = $2 AND state = 'pending' AND attempts = $5 RETURNING true",
        merchant_id,
        notification_id,
        delay,
        why[:1000],
        attempts,
    )
    log.info("ipn deferred", extra={"notification_id": notification_id, "reason": why, "attempt": attempts})
    return f"deferred: {why}" if mine else None


async def process_pending_ipns(ctx: Kontor, rt: Payments) -> int:
    """Apply every due message (oldest first, at most BATCH_MAX per run); each on its own."""
    rows = await ctx.pool.fetch(
        "SELECT merchant_id, notification_id FROM ipn_messages WHERE state = 'pending' AND next_attempt_at <= now() "
        "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY next_attempt_at, received_at LIMIT $1",
        BATCH_MAX,
    )
    done = 0
    for row in rows:
        try:
            if await process_ipn(ctx, rt, row["merchant_id"], row["notification_id"]):
                done += 1
        except Exception:  # recording its outcome failed (the database briefly away): its lease runs out, retried
            log.exception("ipn not recorded", extra={"notification_id": row["notification_id"]})
    return done
