"""Routes of the payments plugin for what Amazon and the merchant's systems say: disputes, the Amazon Pay IPN,
the merchant's notification callbacks and their webhook deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from ledger.context import Kontor
from ledger.http.auth import ADMIN, POST, READ
from ledger.http.deps import ID_MAX, CallDep, IdPath, PageLimit
from payments import dispute_outcomes, disputes, webhooks
from payments.contest import contest_dispute
from payments.disputes import DisputeOut, EvidenceIn, OutcomeIn
from payments.http_params import Code, runtime, state_parameter, state_value
from payments.ipn import IPN_BYTES_MAX, process_ipn, receive_ipn
from payments.runtime import Payments
from payments.webhooks import CallbackCreate, CallbackCreated, CallbackOut, DeliveryPage

__all__ = ["ROUTES", "amazon_pay_ipn", "dispute_evidence", "dispute_outcome", "merchant_router", "read_disputes"]

EVIDENCE_BYTES_MAX = 8 * 1024 * 1024  # ten items; files at most 5 MiB each once decoded
DisputePath = IdPath
_DISPUTE_STATES = ("open", "won", "lost")
_DELIVERY_STATES = ("pending", "delivered", "failed")


@get("/disputes", opt={"roles": READ}, operation_id="listDisputes", tags=["disputes"])
async def read_disputes(
    business_code: Code,
    call: CallDep,
    state_filter: Annotated[str | None, state_parameter(_DISPUTE_STATES)] = None,
) -> list[DisputeOut]:
    business = await call.business(business_code)
    return await disputes.list_disputes(call.ctx, business, state_value(state_filter, _DISPUTE_STATES))


@post(
    "/disputes/{dispute_id:int}/evidence",
    opt={"roles": POST},
    operation_id="addDisputeEvidence",
    tags=["disputes"],
    status_code=201,
    request_max_body_size=EVIDENCE_BYTES_MAX,
    summary="Contest the chargeback at Amazon with evidence: texts and files (PDF, PNG, JPEG, base64)",
    description="The whole request is checked first (at most 8 MiB: 413 above; texts without NUL; files by content, "
    "5 MiB each), then the case: 409 `dispute_resolved`, `dispute_deadline_passed`, `dispute_already_contested` "
    "(unless Amazon asks for more evidence) or `dispute_not_contestable` (Amazon's state is not ActionRequired); "
    "only then are files uploaded to Amazon and the dispute contested with every item. Amazon's refusal is a "
    "problem naming its reasonCode.",
)
async def dispute_evidence(
    business_code: Code, dispute_id: DisputePath, data: JSONBody[EvidenceIn], call: CallDep
) -> DisputeOut:
    return await contest_dispute(call.ctx, runtime(call), await call.business(business_code), dispute_id, data)


@post(
    "/disputes/{dispute_id:int}/outcome",
    opt={"roles": POST},
    operation_id="resolveDispute",
    tags=["disputes"],
    status_code=200,
    summary="Record the outcome: won reverses the chargeback, lost leaves the debt open",
)
async def dispute_outcome(
    business_code: Code, dispute_id: DisputePath, data: JSONBody[OutcomeIn], call: CallDep
) -> DisputeOut:
    return await dispute_outcomes.resolve_dispute(call.ctx, await call.business(business_code), dispute_id, data)


ROUTES = (read_disputes, dispute_evidence, dispute_outcome)


@post(
    "/v1/amazon-pay/ipn",
    opt={"public": True},
    security=[{}],  # no key: an empty requirement overrides the global BearerAuth
    operation_id="receiveAmazonPayIpn",
    tags=["amazon pay"],
    status_code=200,
    request_max_body_size=IPN_BYTES_MAX,
    summary="Amazon Pay IPNs (SNS). Authenticated by the SNS signature, not by an API key",
)
async def amazon_pay_ipn(request: Request[Any, Any, Any], state: State) -> dict[str, str]:
    runtime: Payments = state.payments
    ctx: Kontor = state.kontor
    headers = {k.lower(): v for k, v in request.headers.items()}
    for merchant_id, notification_id in await receive_ipn(ctx, runtime, await request.body(), headers):
        runtime.background.spawn(process_ipn(ctx, runtime, merchant_id, notification_id))
    return {"status": "accepted"}


@post(
    "/notification-callbacks",
    opt={"roles": ADMIN},
    operation_id="createNotificationCallback",
    tags=["notifications"],
    status_code=201,
    summary="Subscribe a callback URL to notification types; the signing secret is shown once",
)
async def create_callback(data: JSONBody[CallbackCreate], call: CallDep) -> CallbackCreated:
    allow_http = runtime(call).settings.webhook_allow_http
    return await webhooks.create_callback(call.ctx, call.merchant_id, data, allow_http)


@get("/notification-callbacks", opt={"roles": ADMIN}, operation_id="listNotificationCallbacks", tags=["notifications"])
async def read_callbacks(call: CallDep) -> list[CallbackOut]:
    return await webhooks.list_callbacks(call.ctx, call.merchant_id)


@delete(
    "/notification-callbacks/{callback_id:int}",
    opt={"roles": ADMIN},
    operation_id="deleteNotificationCallback",
    tags=["notifications"],
    status_code=200,
)
async def delete_callback(callback_id: IdPath, call: CallDep) -> CallbackOut:
    return await webhooks.delete_callback(call.ctx, call.merchant_id, callback_id)


@get("/webhooks/deliveries", opt={"roles": READ}, operation_id="listWebhookDeliveries", tags=["notifications"])
async def read_deliveries(
    call: CallDep,
    limit: PageLimit = 100,
    after: Annotated[int, QueryParameter(ge=0, le=ID_MAX, description="next_after of the previous page")] = 0,
    state_filter: Annotated[str | None, state_parameter(_DELIVERY_STATES)] = None,
    callback_id: Annotated[int | None, QueryParameter(ge=1, le=ID_MAX)] = None,
) -> DeliveryPage:
    state = state_value(state_filter, _DELIVERY_STATES)
    return await webhooks.list_deliveries(
        call.ctx, call.merchant_id, state=state, callback_id=callback_id, after=after, limit=limit
    )


merchant_router = Router(path="/v1", route_handlers=[create_callback, read_callbacks, delete_callback, read_deliveries])
