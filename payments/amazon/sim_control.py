"""The simulator's control routes (/sim/...): what a buyer, an issuer, Amazon's back office or the passing of time
would do in reality, for tests and development only. Bodies are strict msgspec Structs (unknown fields refused);
a bad body is a 400 `{"reasonCode", "message", "field"}` naming the field, an unknown merchant a 404.

| Method | Path | Body | What it does |
|---|---|---|---|
| POST | /sim/merchants | merchant_id?, region (na\\|eu\\|jp), currency?, environment (Sandbox\\|Live), public_key_pem?, public_key_id?, reserve_percent?, chargeback_fee? | Registers a merchant (or adds a key to it): -> merchant_id, public_key_id, private_key_pem (only when the simulator generated the pair) |
| POST | /sim/providers | public_key_pem?, public_key_id?, environment | Registers a solution provider's key: -> public_key_id, private_key_pem? |
| POST | /sim/providers/grants | merchant_id, public_key_id | The merchant authorizes the provider: -> mws_auth_token (`amzn.mws.<uuid>`) |
| POST | /sim/checkout-sessions | merchant_id, amount, currency?, payment_intent, can_handle_pending_authorization, total_order_amount?, merchant_reference_id?, store_name?, soft_descriptor?, simulation?, buyer_name?, buyer_email?, country_code?, checkout_session_id?, environment | The buyer leaves Amazon's page: an Open session (buyer, addresses, paymentDetails, no constraints), or an existing one signed into; simulation HardDeclined \\| SoftDeclined \\| BuyerCanceled \\| PendingThenAuthorized \\| PendingThenDeclined -> the Checkout Session JSON |
| POST | /sim/charge-permissions/payment-method | merchant_id, charge_permission_id | The buyer updates the payment method: NonChargeable -> Chargeable |
| POST | /sim/charges/process | merchant_id | Pending authorizations and captures are processed -> processed [{charge_id, state, reason_code}] |
| POST | /sim/refunds/process | merchant_id, declines? {refund_id: AmazonRejected\\|ProcessingFailure} | RefundInitiated -> Refunded / Declined -> processed [...] |
| POST | /sim/disputes | merchant_id, charge_id, amount, filing_reason? | Files a chargeback on a Captured charge (ActionRequired, 11 days; debits amount + fee) -> Dispute JSON |
| POST | /sim/disputes/resolve | merchant_id, dispute_id, resolution (BuyerWon\\|MerchantWon\\|NoFault) | Resolves a dispute (MerchantWon/NoFault credit the amount back) -> Dispute JSON |
| POST | /sim/declines | merchant_id, operation (CreateCharge\\|Capture\\|Refund), reason_code | Arms a decline for the next call of that operation |
| POST | /sim/failures | count, status (408\\|425\\|429\\|500\\|502\\|503\\|504), reason_code?, retry_after_s?, after?, method? | The next `count` API calls (of `method`) answer `status` (`after`: they are carried out first, their answer is lost) |
| POST | /sim/clock | days?, hours? | Moves the simulated clock forward; lifetimes run out, pending work is processed -> now |
| POST | /sim/settlements | merchant_id | Closes a settlement period -> report_id, report_document_id, payout |
| GET | /sim/settlement-report?merchant_id= | - | Closes a settlement period, answers the flat-file CSV |
| GET | /sim/balance?merchant_id= | - | -> owed, reserve, currency (what Amazon owes outside the reserve, and the reserve) |
| POST | /sim/legacy-orders | merchant_id, amount, currency?, authorized?, captured?, merchant_reference_id?, environment | A v1 Order Reference with an open Authorization (`-A0…`) and/or a completed Capture (`-C0…`) |
| GET | /sim/ipn/sent?merchant_id= | - | The IPNs sent (body, headers), optionally one merchant's |
| POST | /sim/ipn/replay | index | Delivers a sent IPN again -> status |
| POST | /sim/idle | - | Waits until every IPN delivery has finished |

Amounts are decimal strings in the merchant's (or the given) currency, as on Amazon's wire.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Request, Response, get, post

from ledger.money import AmountError, format_amount, parse_amount
from payments.amazon import sim_postsale, sim_state, sim_views
from payments.amazon.sim_bodies import decode
from payments.amazon.sim_control_bodies import (
    BuyerSessionIn,
    ClockIn,
    DeclineIn,
    DisputeIn,
    FailuresIn,
    GrantIn,
    LegacyIn,
    MerchantIn,
    MerchantQuery,
    MerchantRef,
    OptionalMerchantQuery,
    PaymentMethodIn,
    ProviderIn,
    RefundsProcessIn,
    ReplayIn,
    ResolveIn,
)
from payments.amazon.sim_model import Buyer, Failure, SimError
from payments.amazon.sim_reports import close_period

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from payments.amazon.simulator import AmazonPaySimulator

__all__ = ["control_routes", "error_response"]

T = TypeVar("T")


def _money(text: str, currency: str, field: str, *, allow_zero: bool = False) -> int:
    try:
        return parse_amount(text, currency, allow_zero=allow_zero)
    except AmountError as exc:
        raise SimError(400, "InvalidParameterValue", f"{field}: {exc}", field=field) from None


def _public_key(pem: str | None) -> rsa.RSAPublicKey | None:
    if pem is None:
        return None
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise SimError(
            400, "InvalidParameterValue", "public_key_pem is not a PEM public key", field="public_key_pem"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise SimError(
            400, "InvalidParameterValue", "public_key_pem must be an RSA key of >= 2048 bits", field="public_key_pem"
        )
    return key


async def _body(request: Request[Any, Any, Any], kind: type[T]) -> T:
    return decode(await request.body() or b"{}", kind)


def _buyer_session(sim: AmazonPaySimulator, body: BuyerSessionIn) -> dict[str, Any]:
    merchant = sim.merchant(body.merchant_id)
    now, currency = sim.now(), body.currency or merchant.currency
    pending = body.simulation in ("PendingThenAuthorized", "PendingThenDeclined")
    if pending and (body.payment_intent == "Confirm" or not body.can_handle_pending_authorization):
        raise SimError(
            400,
            "InvalidSandboxSimulationSpecified",
            "pending simulations need payment_intent Authorize/AuthorizeWithCapture and can_handle_pending_authorization",
            field="simulation",
        )
    if body.checkout_session_id is None:
        session = sim_state.new_session(merchant, body.environment, now)
    else:
        session = sim_state.find_session(merchant, body.environment, body.checkout_session_id, now)
        if session.state != "Open":
            raise SimError(422, "InvalidCheckoutSessionStatus", f"the session is {session.state}")
    session.payment_intent, session.can_handle_pending = body.payment_intent, body.can_handle_pending_authorization
    session.charge_amount, session.currency = _money(body.amount, currency, "amount"), currency
    if body.total_order_amount is not None:
        session.total_order_amount = _money(body.total_order_amount, currency, "total_order_amount")
    session.merchant_reference_id = body.merchant_reference_id or session.merchant_reference_id
    session.store_name = body.store_name or session.store_name
    session.soft_descriptor = body.soft_descriptor or session.soft_descriptor
    session.review_url = session.review_url or "https://shop.example/checkout/review"
    session.result_url = session.result_url or "https://shop.example/checkout/result"
    session.buyer = Buyer(
        name=body.buyer_name or "Jane Doe",
        email=body.buyer_email or "buyer@example.com",
        country_code=body.country_code or {"na": "US", "jp": "JP"}.get(merchant.region, "DE"),
        state_or_region={"na": "WA", "jp": "Tokyo"}.get(merchant.region),
    )
    session.simulation, session.updated_at = body.simulation, now
    if body.simulation == "BuyerCanceled":
        session.state, session.reason_code = "Canceled", "BuyerCanceled"
    return sim_views.session_json(merchant, session)


def _merchant_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @post("/sim/merchants", status_code=201)
    async def register(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, MerchantIn)
        currency = body.currency
        fee = (
            None
            if body.chargeback_fee is None
            else _money(body.chargeback_fee, currency or "EUR", "chargeback_fee", allow_zero=True)
        )
        merchant, key_id, private_pem = sim.register_merchant(
            body.merchant_id,
            region=body.region,
            currency=currency,
            environment=body.environment,
            public_key=_public_key(body.public_key_pem),
            public_key_id=body.public_key_id,
            reserve_percent=body.reserve_percent,
            chargeback_fee_minor=fee,
        )
        return {
            "merchant_id": merchant.merchant_id,
            "region": merchant.region,
            "currency": merchant.currency,
            "public_key_id": key_id,
            "private_key_pem": private_pem,
        }

    @post("/sim/providers", status_code=201)
    async def provider(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, ProviderIn)
        key_id, private_pem = sim.register_provider(
            body.public_key_id, _public_key(body.public_key_pem), environment=body.environment
        )
        return {"public_key_id": key_id, "private_key_pem": private_pem}

    @post("/sim/providers/grants", status_code=201)
    async def grant(request: Request[Any, Any, Any]) -> dict[str, str]:
        body = await _body(request, GrantIn)
        return {"mws_auth_token": sim.grant_mws_auth_token(body.public_key_id, body.merchant_id)}

    return [register, provider, grant]


def _buyer_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @post("/sim/checkout-sessions", status_code=201)
    async def checkout_session(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return _buyer_session(sim, await _body(request, BuyerSessionIn))

    @post("/sim/legacy-orders", status_code=201)
    async def legacy(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, LegacyIn)
        merchant = sim.merchant(body.merchant_id)
        currency = body.currency or merchant.currency
        permission, auth, capture = sim_postsale.create_legacy_order(
            merchant,
            body.environment,
            amount=_money(body.amount, currency, "amount"),
            currency=currency,
            authorized=None if body.authorized is None else _money(body.authorized, currency, "authorized"),
            captured=None if body.captured is None else _money(body.captured, currency, "captured"),
            merchant_reference_id=body.merchant_reference_id,
            now=sim.now(),
        )
        return {
            "order_reference_id": permission.charge_permission_id,
            "authorization_id": auth.charge_id if auth else None,
            "capture_id": capture.charge_id if capture else None,
        }

    return [checkout_session, legacy]


def _lifecycle_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @post("/sim/charge-permissions/payment-method", status_code=200)
    async def payment_method(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, PaymentMethodIn)
        merchant = sim.merchant(body.merchant_id)
        permission = sim_state.update_payment_method(merchant, body.charge_permission_id, sim.now())
        sim.flush(merchant)
        return sim_views.permission_json(merchant, permission)

    @post("/sim/charges/process", status_code=200)
    async def process_charges(request: Request[Any, Any, Any]) -> dict[str, Any]:
        merchant = sim.merchant((await _body(request, MerchantRef)).merchant_id)
        changed = sim_state.process_charges(merchant, sim.now())
        sim.flush(merchant)
        return {
            "processed": [{"charge_id": c.charge_id, "state": c.state, "reason_code": c.reason_code} for c in changed]
        }

    @post("/sim/refunds/process", status_code=200)
    async def process_refunds(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, RefundsProcessIn)
        merchant = sim.merchant(body.merchant_id)
        changed = sim_postsale.process_refunds(merchant, dict(body.declines), sim.now())
        sim.flush(merchant)
        return {
            "processed": [{"refund_id": r.refund_id, "state": r.state, "reason_code": r.reason_code} for r in changed]
        }

    @post("/sim/declines", status_code=200)
    async def arm_decline(request: Request[Any, Any, Any]) -> dict[str, str]:
        body = await _body(request, DeclineIn)
        sim.merchant(body.merchant_id).armed_declines[body.operation] = body.reason_code
        return {"armed": body.operation, "reason_code": body.reason_code}

    return [payment_method, process_charges, process_refunds, arm_decline]


def _dispute_and_failure_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @post("/sim/disputes", status_code=201)
    async def dispute(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, DisputeIn)
        merchant = sim.merchant(body.merchant_id)
        charge = merchant.charges.get(body.charge_id)
        currency = charge.currency if charge else merchant.currency
        filed = sim_postsale.file_dispute(
            merchant, body.charge_id, _money(body.amount, currency, "amount"), body.filing_reason, sim.now()
        )
        sim.flush(merchant)
        return sim_views.dispute_json(filed)

    @post("/sim/disputes/resolve", status_code=200)
    async def resolve(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await _body(request, ResolveIn)
        merchant = sim.merchant(body.merchant_id)
        resolved = sim_postsale.resolve_dispute(merchant, body.dispute_id, body.resolution, sim.now())
        sim.flush(merchant)
        return sim_views.dispute_json(resolved)

    @post("/sim/failures", status_code=200)
    async def failures(request: Request[Any, Any, Any]) -> dict[str, int]:
        body = await _body(request, FailuresIn)
        failure = Failure(body.status, body.reason_code, body.retry_after_s, body.after, body.method)
        sim.failures.extend([failure] * body.count)
        del sim.failures[:-100]
        return {"pending": len(sim.failures)}

    return [dispute, resolve, failures]


def _books_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @post("/sim/clock", status_code=200)
    async def clock(request: Request[Any, Any, Any]) -> dict[str, str]:
        body = await _body(request, ClockIn)
        sim.advance(timedelta(days=body.days, hours=body.hours))
        return {"now": sim.now().isoformat()}

    @post("/sim/settlements", status_code=201)
    async def settle(request: Request[Any, Any, Any]) -> dict[str, Any]:
        merchant = sim.merchant((await _body(request, MerchantRef)).merchant_id)
        await sim.idle()
        before = sim.books[merchant.merchant_id].transferred
        report, _ = close_period(merchant, sim.books[merchant.merchant_id], sim.now())
        payout = sim.books[merchant.merchant_id].transferred - before
        return {
            "report_id": report.report_id,
            "report_document_id": report.document_id,
            "payout": format_amount(payout, merchant.currency),
        }

    @get("/sim/settlement-report", media_type="text/csv")
    async def settlement_report(merchant_id: MerchantQuery) -> str:
        merchant = sim.merchant(merchant_id)
        await sim.idle()
        return sim.settlement_report(merchant)

    @get("/sim/balance")
    async def balance(merchant_id: MerchantQuery) -> dict[str, str]:
        merchant = sim.merchant(merchant_id)
        owed, reserve = sim.owed(merchant)
        return {
            "owed": format_amount(owed, merchant.currency),
            "reserve": format_amount(reserve, merchant.currency),
            "currency": merchant.currency,
        }

    return [clock, settle, settlement_report, balance]


def _ipn_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    @get("/sim/ipn/sent")
    async def sent(merchant_id: OptionalMerchantQuery = None) -> list[dict[str, Any]]:
        found = []
        for body, headers in sim.sent:
            text = body.decode()
            if merchant_id is None or json.loads(json.loads(text)["Message"])["MerchantID"] == merchant_id:
                found.append({"body": text, "headers": headers})
        return found

    @post("/sim/ipn/replay", status_code=200)
    async def replay(request: Request[Any, Any, Any]) -> dict[str, Any]:
        index = (await _body(request, ReplayIn)).index
        if index >= len(sim.sent):
            raise SimError(404, "ResourceNotFound", f"no IPN #{index}", field="index")
        body, headers = sim.sent[index]
        return {"status": await sim.deliver(body, headers)}

    @post("/sim/idle", status_code=200)
    async def idle() -> Response[None]:
        await sim.idle()
        return Response(None, status_code=200)

    return [sent, replay, idle]


def control_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    """Every /sim/ route of the table above, bound to `sim`."""
    groups = (
        _merchant_routes,
        _buyer_routes,
        _lifecycle_routes,
        _dispute_and_failure_routes,
        _books_routes,
        _ipn_routes,
    )
    return [handler for group in groups for handler in group(sim)]


def error_response(request: Request[Any, Any, Any], exc: SimError) -> Response[bytes]:
    """SimError -> Amazon's error body, with the field a control body got wrong."""
    payload: dict[str, Any] = {"reasonCode": exc.reason_code, "message": exc.message}
    if exc.field is not None:
        payload["field"] = exc.field
    return Response(json.dumps(payload).encode(), status_code=exc.status, media_type="application/json")
