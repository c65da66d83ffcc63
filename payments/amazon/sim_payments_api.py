"""The simulated Amazon Pay API v2 payment operations: checkout sessions, charge permissions, charges, refunds,
disputes and files, one handler per operation (developer.amazon.com/docs/amazon-pay-api-v2/*.html).

Split from `sim_api.py` (routing, signature, region and idempotency checks, which every operation passes first):
each handler decodes the body (`sim_bodies.py`), runs the state change (`sim_state.py` for the sale side,
`sim_postsale.py` after it) and answers Amazon's JSON (`sim_views.py`). The handlers register themselves with
`sim_api.route` when `sim_api.register_routes` imports this module.
"""

from __future__ import annotations

from typing import Any

from payments.amazon import sim_postsale as post
from payments.amazon import sim_state as state
from payments.amazon import sim_views as views
from payments.amazon.sim_api import Ctx, route
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
from payments.amazon.sim_model import SimError, SimSession

__all__: list[str] = []  # the handlers are reached through the routes they register


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
