"""The simulated Amazon Pay API v2 routes: routing, signature check, idempotency, and one handler per operation.

Why separate: this is the wire contract Kontor's client talks to; the simulator app (`simulator.py`) only hands
it raw requests and sends the IPNs the operations queued.

Order of checks for every request: injected failure (control route `/sim/failures`), route (404/405
RequestNotSupported), signature (`sim_auth.verify`: a key acts for its one merchant account, in its one
environment), delegation (a provider key needs a token: 401 UnauthorizedAccess), region (the signed
x-amz-pay-region must be the merchant account's: keys do not work on another region's endpoint, 401
UnauthorizedAccess), idempotency for POST, then the operation. Idempotency (x-amz-pay-idempotency-key on every
POST, 1-32 `[A-Za-z0-9_-]`, else 400 MissingHeader/InvalidHeaderValue): per merchant, the same key with the same
method, path and body answers the stored status and body; with anything else 400 DuplicateIdempotencyKey. Keys
are kept 24 hours (simulated clock) and at most `IDEMPOTENCY_KEYS_MAX` per merchant; 5xx answers are not stored,
so a retry after a server error runs again. Reports, documents and disbursements: `sim_reporting_api.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from payments.amazon import sim_postsale as post
from payments.amazon import sim_state as state
from payments.amazon import sim_views as views
from payments.amazon.sim_auth import Caller, KeyRing, split_path, verify
from payments.amazon.sim_bodies import (
    CancelBody,
    CaptureBody,
    CloseBody,
    CompleteBody,
    ContestBody,
    CreateChargeBody,
    CreateSessionBody,
    FileBody,
    PermissionUpdateBody,
    RefundBody,
    SessionUpdateBody,
    decode,
    parse_price,
)
from payments.amazon.sim_model import SimError, SimMerchant, SimSession, StoredAnswer
from payments.amazon.sim_reports import Books

__all__ = [
    "IDEMPOTENCY_KEYS_MAX",
    "IDEMPOTENCY_TTL",
    "ApiHost",
    "Ctx",
    "Handler",
    "handle_api",
    "register_routes",
    "route",
]

log = logging.getLogger("kontor.simulator")
IDEMPOTENCY_KEYS_MAX = 10_000
IDEMPOTENCY_TTL = timedelta(hours=24)
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ApiHost(Protocol):
    """What the API needs from the simulator object."""

    ring: KeyRing
    merchants: dict[str, SimMerchant]
    books: dict[str, Books]

    def now(self) -> datetime: ...


@dataclass
class Ctx:
    host: ApiHost
    caller: Caller
    merchant: SimMerchant
    environment: str
    now: datetime
    query: Sequence[tuple[str, str]]
    base_url: str
    params: tuple[str, ...]
    body: bytes


Handler = Callable[[Ctx], tuple[int, Any]]
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    regex = re.compile("^" + pattern.replace("{id}", "([^/]+)") + "$")

    def add(handler: Handler) -> Handler:
        for known, methods in _ROUTES:
            if known.pattern == regex.pattern:
                methods[method] = handler
                return handler
        _ROUTES.append((regex, {method: handler}))
        return handler

    return add


def register_routes() -> None:
    """Import the modules whose handlers register themselves (reporting) - called once by the app."""
    from payments.amazon import sim_reporting_api  # noqa: F401, PLC0415 - registers its routes on import


def _answer(status: int, payload: Any) -> tuple[int, bytes]:
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _error(exc: SimError) -> tuple[int, bytes]:
    return _answer(exc.status, views.error_json(exc.reason_code, exc.message))


def handle_api(
    host: ApiHost,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    base_url: str,
) -> tuple[int, bytes, SimMerchant | None]:
    """One API request -> (status, JSON body, the merchant whose outbox may hold IPNs)."""
    merchant: SimMerchant | None = None
    try:
        handler, params = _match(method, path)
        caller = verify(host.ring, method, path, query, headers, body, datetime.now(UTC))
        if handler is exchange_token:
            return (*_exchange(host, caller, params[0], query, headers), None)
        merchant = _merchant(host, caller)
        _check_region(merchant, headers)
        ctx = Ctx(host, caller, merchant, caller.environment, host.now(), query, base_url, params, body)
        if method != "POST":
            return (*_run(handler, ctx), merchant)
        return (*_idempotent(ctx, handler, headers.get("x-amz-pay-idempotency-key"), f"{method} {path}"), merchant)
    except SimError as exc:
        return (*_error(exc), merchant)


def _match(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    split = split_path(path)
    if split is None:
        raise SimError(404, "RequestNotSupported", f"{path} is not an Amazon Pay API path")
    api_path = split[1]
    for regex, methods in _ROUTES:
        found = regex.match(api_path)
        if found:
            handler = methods.get(method)
            if handler is None:
                raise SimError(405, "RequestNotSupported", f"{method} is not supported on {api_path}")
            return handler, found.groups()
    raise SimError(404, "RequestNotSupported", f"{api_path} is not an Amazon Pay API operation")


@route("GET", "/authorizationTokens/{id}")
def exchange_token(ctx: Ctx) -> tuple[int, Any]:
    """Routed here, answered by `_exchange` (the call has no merchant yet: it is how a provider gets one)."""
    raise SimError(500, "InternalServerError", "the token exchange is answered before the merchant is known")


def _merchant(host: ApiHost, caller: Caller) -> SimMerchant:
    if caller.merchant_id is None:
        raise SimError(401, "UnauthorizedAccess", "a solution provider key acts for a merchant via x-amz-pay-authtoken")
    merchant = host.merchants.get(caller.merchant_id)
    if merchant is None:
        raise SimError(401, "UnauthorizedAccess", f"merchant {caller.merchant_id} is not registered")
    return merchant


def _check_region(merchant: SimMerchant, headers: Mapping[str, str]) -> None:
    """A merchant account lives in one region (na, eu, jp): its keys do not work on another region's endpoint
    (Amazon: pay-api.amazon.com/.eu/.jp; here the signed x-amz-pay-region header says which one was meant)."""
    region = (headers.get("x-amz-pay-region") or "").strip().lower()
    if region and region != merchant.region:
        raise SimError(
            401,
            "UnauthorizedAccess",
            f"merchant {merchant.merchant_id} is registered in region {merchant.region}, not {region}",
        )


def _exchange(
    host: ApiHost,
    caller: Caller,
    mws_auth_token: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
) -> tuple[int, bytes]:
    """GET /v2/authorizationTokens/{mwsAuthToken}?merchantId=… (provider key): -> {authorizationToken}."""
    if caller.key.owner != "provider":
        raise SimError(401, "UnauthorizedAccess", "only a solution provider's key may exchange an MWS auth token")
    merchant_ids = [value for name, value in query if name == "merchantId"]
    if len(merchant_ids) != 1 or not merchant_ids[0]:
        raise SimError(400, "MissingParameterValue", "merchantId is required (once)")
    token = host.ring.exchange(caller.key.public_key_id, merchant_ids[0], mws_auth_token)
    merchant = host.merchants.get(merchant_ids[0])
    if merchant is not None:
        _check_region(merchant, headers)
    return _answer(200, {"authorizationToken": token})


def _run(handler: Handler, ctx: Ctx) -> tuple[int, bytes]:
    try:
        status, payload = handler(ctx)
    except SimError as exc:
        return _error(exc)
    except Exception:  # a simulator bug: answer like Amazon's 500, keep the traceback in the log
        log.exception("simulator operation failed")
        return _answer(500, views.error_json("InternalServerError", "the simulator failed; see its log"))
    return _answer(status, payload)


def _idempotent(ctx: Ctx, handler: Handler, key: str | None, target: str) -> tuple[int, bytes]:
    if key is None or not key.strip():
        raise SimError(400, "MissingHeader", "x-amz-pay-idempotency-key is required on POST")
    if not _KEY.match(key):
        raise SimError(400, "InvalidHeaderValue", "x-amz-pay-idempotency-key must be 1-32 characters [A-Za-z0-9_-]")
    store = ctx.merchant.idempotency
    fingerprint = hashlib.sha256(target.encode() + b"\n" + ctx.body).hexdigest()
    stored = store.get(key)
    if stored is not None and ctx.now - stored.stored_at > IDEMPOTENCY_TTL:
        del store[key]
        stored = None
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise SimError(400, "DuplicateIdempotencyKey", f"key {key} was used for another request")
        return stored.status, stored.body
    status, raw = _run(handler, ctx)
    if status < 500:
        store[key] = StoredAnswer(fingerprint, status, raw, ctx.now)
        while len(store) > IDEMPOTENCY_KEYS_MAX:
            store.popitem(last=False)
    return status, raw


# --- checkout sessions ---------------------------------------------------------------------------------------
def _apply_session(session: SimSession, body: CreateSessionBody | SessionUpdateBody) -> None:
    web, payment, metadata = body.webCheckoutDetails, body.paymentDetails, body.merchantMetadata
    if web is not None:
        session.review_url = web.checkoutReviewReturnUrl or session.review_url
        session.result_url = web.checkoutResultReturnUrl or session.result_url
    if payment is not None:
        if payment.chargeAmount is not None:
            session.charge_amount, session.currency = parse_price(payment.chargeAmount, "paymentDetails.chargeAmount")
        if payment.totalOrderAmount is not None:
            total, currency = parse_price(payment.totalOrderAmount, "paymentDetails.totalOrderAmount")
            if session.currency not in (None, currency):
                raise SimError(400, "CurrencyMismatch", "totalOrderAmount and chargeAmount differ in currency")
            session.total_order_amount = total
        session.payment_intent = payment.paymentIntent or session.payment_intent
        if payment.canHandlePendingAuthorization is not None:
            session.can_handle_pending = payment.canHandlePendingAuthorization
        session.soft_descriptor = payment.softDescriptor or session.soft_descriptor
    if metadata is not None:
        session.merchant_reference_id = metadata.merchantReferenceId or session.merchant_reference_id
        session.store_name = metadata.merchantStoreName or session.store_name
        session.note_to_buyer = metadata.noteToBuyer or session.note_to_buyer
        session.custom_information = metadata.customInformation or session.custom_information


@route("POST", "/checkoutSessions")
def create_session(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, CreateSessionBody)
    session = state.new_session(ctx.merchant, ctx.environment, ctx.now)
    session.store_id = body.storeId
    _apply_session(session, body)
    return 201, views.session_json(ctx.merchant, session)


@route("GET", "/checkoutSessions/{id}")
def get_session(ctx: Ctx) -> tuple[int, Any]:
    session = state.find_session(ctx.merchant, ctx.environment, ctx.params[0], ctx.now)
    return 200, views.session_json(ctx.merchant, session)


@route("PATCH", "/checkoutSessions/{id}")
def update_session(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, SessionUpdateBody)
    session = state.find_session(ctx.merchant, ctx.environment, ctx.params[0], ctx.now)
    if session.state != "Open":
        raise SimError(422, "InvalidCheckoutSessionStatus", f"the Checkout Session is {session.state}, not Open")
    _apply_session(session, body)
    session.updated_at = ctx.now
    return 200, views.session_json(ctx.merchant, session)


@route("POST", "/checkoutSessions/{id}/complete")
def complete_session(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, CompleteBody)
    amount, currency = parse_price(body.chargeAmount, "chargeAmount")
    if body.totalOrderAmount is not None:
        total, total_currency = parse_price(body.totalOrderAmount, "totalOrderAmount")
        if total_currency != currency or total < amount:
            raise SimError(400, "InvalidParameterValue", "totalOrderAmount must be >= chargeAmount, same currency")
        found = state.find_session(ctx.merchant, ctx.environment, ctx.params[0], ctx.now)
        if found.state == "Open":
            found.total_order_amount = total
    session = state.complete_session(ctx.merchant, ctx.environment, ctx.params[0], amount, currency, ctx.now)
    return 200, views.session_json(ctx.merchant, session)


# --- charge permissions --------------------------------------------------------------------------------------
@route("GET", "/chargePermissions/{id}")
def get_permission(ctx: Ctx) -> tuple[int, Any]:
    permission = state.find_permission(ctx.merchant, ctx.environment, ctx.params[0], ctx.now)
    return 200, views.permission_json(ctx.merchant, permission)


@route("PATCH", "/chargePermissions/{id}")
def update_permission(ctx: Ctx) -> tuple[int, Any]:
    metadata = decode(ctx.body, PermissionUpdateBody).merchantMetadata
    permission = state.find_permission(ctx.merchant, ctx.environment, ctx.params[0], ctx.now)
    if permission.state == "Closed":
        raise SimError(422, "ChargePermissionNotModifiable", "the Charge Permission is Closed")
    permission.merchant_reference_id = metadata.merchantReferenceId or permission.merchant_reference_id
    permission.store_name = metadata.merchantStoreName or permission.store_name
    return 200, views.permission_json(ctx.merchant, permission)


@route("DELETE", "/chargePermissions/{id}/close")
def close_permission(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body or b"{}", CloseBody)
    permission = state.close_permission(
        ctx.merchant, ctx.environment, ctx.params[0], body.cancelPendingCharges, ctx.now
    )
    return 200, views.permission_json(ctx.merchant, permission)


# --- charges -------------------------------------------------------------------------------------------------
@route("POST", "/charges")
def create_charge(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, CreateChargeBody)
    amount, currency = parse_price(body.chargeAmount, "chargeAmount")
    reference = body.merchantMetadata.merchantReferenceId if body.merchantMetadata else None
    charge = state.create_charge(
        ctx.merchant,
        ctx.environment,
        body.chargePermissionId,
        amount,
        currency,
        capture_now=body.captureNow,
        can_pend=body.canHandlePendingAuthorization,
        labels=(body.softDescriptor, reference),
        now=ctx.now,
    )
    return 201, views.charge_json(charge)


@route("GET", "/charges/{id}")
def get_charge(ctx: Ctx) -> tuple[int, Any]:
    return 200, views.charge_json(state.find_charge(ctx.merchant, ctx.environment, ctx.params[0], ctx.now))


@route("POST", "/charges/{id}/capture")
def capture_charge(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, CaptureBody)
    amount, currency = parse_price(body.captureAmount, "captureAmount")
    charge = state.capture_charge(ctx.merchant, ctx.environment, ctx.params[0], amount, currency, ctx.now)
    if body.softDescriptor is not None:
        charge.soft_descriptor = body.softDescriptor
    return 200, views.charge_json(charge)


@route("DELETE", "/charges/{id}/cancel")
def cancel_charge(ctx: Ctx) -> tuple[int, Any]:
    decode(ctx.body or b"{}", CancelBody)
    return 200, views.charge_json(state.cancel_charge(ctx.merchant, ctx.environment, ctx.params[0], ctx.now))


# --- refunds, disputes, files --------------------------------------------------------------------------------
@route("POST", "/refunds")
def create_refund(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, RefundBody)
    amount, currency = parse_price(body.refundAmount, "refundAmount")
    refund = post.create_refund(
        ctx.merchant, ctx.environment, body.chargeId, amount, currency, body.softDescriptor, ctx.now
    )
    return 201, views.refund_json(refund)


@route("GET", "/refunds/{id}")
def get_refund(ctx: Ctx) -> tuple[int, Any]:
    return 200, views.refund_json(post.find_refund(ctx.merchant, ctx.environment, ctx.params[0]))


@route("GET", "/disputes/{id}")
def get_dispute(ctx: Ctx) -> tuple[int, Any]:
    return 200, views.dispute_json(post.find_dispute(ctx.merchant, ctx.environment, ctx.params[0], ctx.now))


@route("POST", "/disputes/{id}/contest")
def contest_dispute(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, ContestBody)
    evidences = [(e.evidenceType, e.fileId, e.evidenceText) for e in body.merchantEvidences]
    dispute = post.contest_dispute(ctx.merchant, ctx.environment, ctx.params[0], evidences, ctx.now)
    return 200, views.dispute_json(dispute)


@route("POST", "/files")
def create_file(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, FileBody)
    found = post.create_file(ctx.merchant, ctx.environment, body.type, body.purpose, ctx.now)
    url = f"{ctx.base_url}/s3/uploads/{ctx.merchant.merchant_id}/{found.upload_token}"
    return 201, views.file_json(found, url)
