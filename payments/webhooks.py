"""Webhooks to the merchant: callback subscriptions per notification type, delivery from the outbox.

Every notification is written to the outbox in the transaction of the booking that caused it. A worker
fans new outbox events out to one delivery per subscribed callback, then delivers due ones: a POST of
`{"id", "type", "created_at", "data"}` signed with HMAC-SHA256 over `"{timestamp}.{raw body}"` in the
`Kontor-Signature: t=<unix seconds>,v1=<hex>` header (the merchant checks it in constant time and
refuses timestamps more than 5 minutes away, see `verify_signature`). A 2xx answer delivers it; anything
else (an error status, a timeout, a refused connection) is retried with exponential backoff (base x 2^n,
at most 6 hours apart) until the attempt limit, then the delivery is `failed` and stays listed.

Where a callback may point and which addresses a delivery may connect to is `payments.egress`: URLs are
checked at subscription, and every connection of the worker's client (`egress.webhook_client`) checks the
address it actually connects to; a delivery records only "HTTP <status>", that the address was refused,
or that nothing answered.

Delivery is at least once and unordered: receivers deduplicate by the event id, and balance.updated
carries the absolute balance, not a difference. A delivery is claimed by moving its next attempt past
a lease before the HTTP call (no row lock is held over the network), so several service instances
never post the same attempt twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime
from typing import Annotated, Any

import httpx
import msgspec
from msgspec import Meta, Struct

from ledger.context import Kontor
from ledger.errors import FieldError, NotFound, Unprocessable, present
from payments.egress import ADDRESS_REFUSED, NO_RESPONSE, AddressRefused, check_callback_url, public_error

__all__ = [
    "NOTIFICATION_TYPES",
    "CallbackCreate",
    "CallbackCreated",
    "CallbackOut",
    "DeliveryOut",
    "DeliveryPage",
    "WebhookWorker",
    "create_callback",
    "delete_callback",
    "list_callbacks",
    "list_deliveries",
    "sign",
    "verify_signature",
]

log = logging.getLogger("kontor.webhooks")

NOTIFICATION_TYPES = frozenset(
    {
        "balance.updated",
        "invoice.created",
        "payment.received",
        "refund.completed",
        "refund.declined",
        "chargeback.received",
        "dispute.resolved",
        "settlement.reconciled",
        "reminder.sent",
        "document.created",
        "debt.written_off",
        "period.closed",
    }
)
CALLBACKS_PER_MERCHANT_MAX = 20
BACKOFF_S_MAX = 6 * 3600
SIGNATURE_TOLERANCE_S = 300
_LEASE_S = 60


class CallbackCreate(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(min_length=8, max_length=2000)]
    types: Annotated[list[str], Meta(min_length=1, max_length=len(NOTIFICATION_TYPES))]


class CallbackOut(Struct, kw_only=True):
    callback_id: int
    url: str
    types: list[str]
    active: bool
    created_at: datetime


class CallbackCreated(CallbackOut, kw_only=True):
    secret: str  # shown once: the HMAC-SHA256 key the merchant verifies signatures with


class DeliveryOut(Struct, kw_only=True):
    delivery_id: int
    event_id: int
    type: str
    callback_id: int
    url: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(Struct, kw_only=True):
    items: list[DeliveryOut]
    next_after: int | None


# --- signatures ------------------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Kontor-Signature` header value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> bool:
    """What a receiver checks: a v1 HMAC over the timestamp and raw body, the timestamp within 5 minutes."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for k, v in parts.items() if k == "v1")


# --- subscriptions ---------------------------------------------------------------------------------------
def _callback(row: Any) -> CallbackOut:
    return CallbackOut(
        callback_id=row["callback_id"],
        url=row["url"],
        types=list(row["types"]),
        active=row["active"],
        created_at=row["created_at"],
    )


async def create_callback(ctx: Kontor, merchant_id: int, body: CallbackCreate, allow_http: bool) -> CallbackCreated:
    unknown = sorted(set(body.types) - NOTIFICATION_TYPES)
    if unknown:
        raise Unprocessable(
            "unknown_notification_type",
            f"unknown notification types: {', '.join(unknown)}",
            [FieldError("types", f"one of {', '.join(sorted(NOTIFICATION_TYPES))}")],
        )
    await check_callback_url(body.url, allow_private=allow_http)  # before the lock: it may resolve the name
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kontor-callbacks'), $1::int)", merchant_id % 2**31)
        count = await conn.fetchval(
            "SELECT count(*) FROM notification_callbacks WHERE merchant_id = $1 AND active", merchant_id
        )
        if count >= CALLBACKS_PER_MERCHANT_MAX:
            raise Unprocessable("too_many_callbacks", f"at most {CALLBACKS_PER_MERCHANT_MAX} active callbacks")
        row = await conn.fetchrow(
            "INSERT INTO notification_callbacks (merchant_id, url, types, secret) VALUES ($1, $2, $3, $4) "
            "RETURNING callback_id, url, types, active, created_at",
            merchant_id,
            body.url,
            sorted(set(body.types)),
            secret,
        )
    out = _callback(row)
    return CallbackCreated(**msgspec.structs.asdict(out), secret=secret)


async def list_callbacks(ctx: Kontor, merchant_id: int) -> list[CallbackOut]:
    rows = await ctx.pool.fetch(
        "SELECT callback_id, url, types, active, created_at FROM notification_callbacks WHERE merchant_id = $1 "
        "ORDER BY callback_id",
        merchant_id,
    )
    return [_callback(r) for r in rows]


async def delete_callback(ctx: Kontor, merchant_id: int, callback_id: int) -> CallbackOut:
    """Deactivate: no new deliveries; pending ones are given up (their history stays listed)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE notification_callbacks SET active = false WHERE merchant_id = $1 AND callback_id = $2 "
            "RETURNING callback_id, url, types, active, created_at",
            merchant_id,
            callback_id,
        )
        if row is None:
            raise NotFound("callback_not_found", f"notification callback {callback_id} not found")
        await conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'callback deleted' "
            "WHERE merchant_id = $1 AND callback_id = $2 AND state = 'pending'",
            merchant_id,
            callback_id,
        )
    return _callback(row)


async def list_deliveries(
    ctx: Kontor, merchant_id: int, *, state: str | None, callback_id: int | None, after: int, limit: int
) -> DeliveryPage:
    rows = await ctx.pool.fetch(
        "SELECT d.delivery_id, d.event_id, o.type, d.callback_id, c.url, d.state, d.attempts, d.next_attempt_at, "
        "d.last_status, d.last_error, d.delivered_at, d.created_at FROM webhook_deliveries d "
        "JOIN outbox o ON o.merchant_id = d.merchant_id AND o.event_id = d.event_id "
        "JOIN notification_callbacks c ON c.merchant_id = d.merchant_id AND c.callback_id = d.callback_id "
        "WHERE d.merchant_id = $1 AND ($2::text IS NULL OR d.state = $2) "
        "AND ($3::bigint IS NULL OR d.callback_id = $3) AND d.delivery_id > $4 ORDER BY d.delivery_id LIMIT $5",
        merchant_id,
        state,
        callback_id,
        after,
        limit + 1,
    )
    items = [
        DeliveryOut(
            delivery_id=r["delivery_id"],
            event_id=r["event_id"],
            type=r["type"],
            callback_id=r["callback_id"],
            url=r["url"],
            state=r["state"],
            attempts=r["attempts"],
            next_attempt_at=r["next_attempt_at"] if r["state"] == "pending" else None,
            last_status=r["last_status"],
            last_error=public_error(r["last_error"]),
            delivered_at=r["delivered_at"],
            created_at=r["created_at"],
        )
        for r in rows[:limit]
    ]
    return DeliveryPage(items=items, next_after=items[-1].delivery_id if len(rows) > limit else None)


# --- delivery --------------------------------------------------------------------------------------------
class WebhookWorker:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        attempts_max: int,
        backoff_s: float,
        timeout_s: float,
        batch: int = 200,
        concurrency: int = 16,
    ) -> None:
        self.http, self.attempts_max, self.backoff_s, self.timeout_s = http, attempts_max, backoff_s, timeout_s
        self.batch, self.concurrency = batch, concurrency

    async def run_once(self, ctx: Kontor) -> int:
        """Fan out new events, then attempt the due deliveries; returns how many were attempted."""
        await self.fan_out(ctx)
        return await self.deliver_due(ctx)

    async def fan_out(self, ctx: Kontor) -> int:
        async with ctx.pool.acquire() as conn, conn.transaction():
            events = await conn.fetch(
                "SELECT merchant_id, event_id, type FROM outbox WHERE dispatched_at IS NULL ORDER BY event_id "
                "LIMIT 5000 FOR UPDATE SKIP LOCKED"
            )
            if not events:
                return 0
            merchants, ids = [e["merchant_id"] for e in events], [e["event_id"] for e in events]
            await conn.execute(
                "INSERT INTO webhook_deliveries (merchant_id, event_id, callback_id) "
                "SELECT e.merchant_id, e.event_id, c.callback_id FROM outbox e "
                "JOIN unnest($1::bigint[], $2::bigint[]) AS u(merchant_id, event_id) "
                "  ON e.merchant_id = u.merchant_id AND e.event_id = u.event_id "
                "JOIN notification_callbacks c ON c.merchant_id = e.merchant_id AND c.active "
                "  AND e.type = ANY(c.types) ON CONFLICT DO NOTHING",
                merchants,
                ids,
            )
            await conn.execute(
                "UPDATE outbox o SET dispatched_at = now() FROM unnest($1::bigint[], $2::bigint[]) AS u(m, e) "
                "WHERE o.merchant_id = u.m AND o.event_id = u.e",
                merchants,
                ids,
            )
        return len(events)

    async def deliver_due(self, ctx: Kontor) -> int:
        claimed = await ctx.pool.fetch(
            "UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2), "
            "attempts = d.attempts + 1 FROM (SELECT merchant_id, delivery_id FROM webhook_deliveries "
            "  WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 "
            "  FOR UPDATE SKIP LOCKED) due "
            "WHERE d.merchant_id = due.merchant_id AND d.delivery_id = due.delivery_id "
            "RETURNING d.merchant_id, d.delivery_id, d.event_id, d.callback_id, d.attempts",
            self.batch,
            _LEASE_S + self.timeout_s,
        )
        limit = asyncio.Semaphore(self.concurrency)

        async def attempt(delivery: Any) -> None:
            async with limit:
                await self._attempt(ctx, delivery)

        await asyncio.gather(*(attempt(d) for d in claimed))
        return len(claimed)

    async def _attempt(self, ctx: Kontor, delivery: Any) -> None:
        row = await ctx.pool.fetchrow(
            "SELECT o.type, o.payload, o.created_at, c.url, c.secret, c.active FROM outbox o "
            "JOIN notification_callbacks c ON c.merchant_id = o.merchant_id AND c.callback_id = $3 "
            "WHERE o.merchant_id = $1 AND o.event_id = $2",
            delivery["merchant_id"],
            delivery["event_id"],
            delivery["callback_id"],
        )
        row = present(row, "callbacks are never deleted, only deactivated")
        if not row["active"]:
            await self._record(ctx, delivery, None, "callback deleted", give_up=True)
            return
        body = msgspec.json.encode(
            {
                "id": str(delivery["event_id"]),
                "type": row["type"],
                "created_at": row["created_at"],
                "data": row["payload"],
            }
        )
        status, error = None, None
        try:
            response = await self.http.post(
                row["url"],
                content=body,
                timeout=self.timeout_s,
                follow_redirects=False,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "Kontor-Webhooks/1",
                    "Kontor-Event-Id": str(delivery["event_id"]),
                    "Kontor-Event-Type": row["type"],
                    "Kontor-Delivery-Attempt": str(delivery["attempts"]),
                    "Kontor-Signature": sign(row["secret"], int(time.time()), body),
                },
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # recorded generically: a socket's words map ports
            error = ADDRESS_REFUSED if isinstance(exc.__cause__, AddressRefused) else NO_RESPONSE
            log.info("webhook delivery got no answer", extra={"error": type(exc).__name__})
        await self._record(ctx, delivery, status, error)

    async def _record(
        self, ctx: Kontor, delivery: Any, status: int | None, error: str | None, *, give_up: bool = False
    ) -> None:
        attempts = delivery["attempts"]
        if error is None:
            state, delay = "delivered", 0.0
        elif attempts >= self.attempts_max or give_up:
            state, delay = "failed", 0.0
            log.warning(
                "webhook delivery failed for good",
                extra={"merchant_id": delivery["merchant_id"], "delivery_id": delivery["delivery_id"], "error": error},
            )
        else:
            state, delay = "pending", min(self.backoff_s * 2 ** (attempts - 1), BACKOFF_S_MAX)
        await ctx.pool.execute(
            "UPDATE webhook_deliveries SET state = $3, last_status = $4, last_error = $5, "
            "next_attempt_at = now() + make_interval(secs => $6), "
            "delivered_at = CASE WHEN $3 = 'delivered' THEN now() END "
            "WHERE merchant_id = $1 AND delivery_id = $2",
            delivery["merchant_id"],
            delivery["delivery_id"],
            state,
            status,
            error,
            delay,
        )
