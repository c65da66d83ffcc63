"""HTTP routes of the payments plugin: Amazon Pay settings and the order use cases of a customer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from ledger.context import Kontor
from ledger.http.auth import ADMIN, POST, READ
from ledger.http.deps import Call, CallDep
from payments import disputes, documents, orders
from payments.disputes import DisputeOut, EvidenceIn, OutcomeIn
from payments.ipn import IPN_BYTES_MAX, process_ipn, receive_ipn
from payments.orders import Payments
from payments.schemas import (
    AmazonPaySettingsIn,
    AmazonPaySettingsOut,
    CancellationCreate,
    DocumentOut,
    GoodwillCreate,
    InvoiceCreate,
    OrderCreate,
    OrderOut,
    PaymentCreate,
    ReturnCreate,
)
from payments.settings import get_settings, put_settings

__all__ = ["router"]

Code = FromPath[int]
CustomerPath = Annotated[str, PathParameter(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")]
OrderPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
REPLAYED = {"Idempotent-Replayed": "true"}


def _runtime(call: Call) -> Payments:
    runtime: Payments = call.request.app.state.payments
    return runtime


def _created(content: Any, created: bool) -> Response[Any]:
    return Response(content, status_code=201 if created else 200, headers=None if created else REPLAYED)


@get("/amazon-pay/settings", opt={"roles": ADMIN}, operation_id="getAmazonPaySettings", tags=["amazon pay"])
async def read_settings(business_code: Code, call: CallDep) -> AmazonPaySettingsOut:
    return await get_settings(call.ctx, await call.business(business_code))


@put(
    "/amazon-pay/settings",
    opt={"roles": ADMIN},
    operation_id="putAmazonPaySettings",
    tags=["amazon pay"],
    summary="Set the merchant's Amazon Pay seller id, MWS auth token (write-only) and payment execution",
)
async def write_settings(
    business_code: Code, data: JSONBody[AmazonPaySettingsIn], call: CallDep
) -> AmazonPaySettingsOut:
    return await put_settings(call.ctx, await call.business(business_code), data)


@post(
    "/customers/{customer:str}/orders",
    opt={"roles": POST},
    operation_id="createOrder",
    tags=["orders"],
    summary="Create an order: Amazon Pay is authorized (one-step: and captured) at once",
)
async def create_order(
    business_code: Code, customer: CustomerPath, data: JSONBody[OrderCreate], call: CallDep
) -> Response[OrderOut]:
    out, created = await orders.create_order(
        call.ctx, _runtime(call), await call.business(business_code), customer, data, call.request_sha256(data)
    )
    return _created(out, created)


@get("/customers/{customer:str}/orders/{order:str}", opt={"roles": READ}, operation_id="getOrder", tags=["orders"])
async def read_order(business_code: Code, customer: CustomerPath, order: OrderPath, call: CallDep) -> OrderOut:
    return await orders.get_order(call.ctx, await call.business(business_code), customer, order)


DocPath = "/customers/{customer:str}/orders/{order:str}"


@post(
    f"{DocPath}/invoices",
    opt={"roles": POST},
    operation_id="createInvoice",
    tags=["orders"],
    summary="Invoice whole items (one shipment): revenue and VAT; two-step captures it",
)
async def create_invoice(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[InvoiceCreate], call: CallDep
) -> Response[DocumentOut]:
    out, created = await orders.create_invoice(
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return _created(out, created)


@post(
    f"{DocPath}/cancellations",
    opt={"roles": POST},
    operation_id="createCancellation",
    tags=["orders"],
    summary="Cancel items not yet invoiced: refund if prepaid, else close the authorization",
)
async def create_cancellation(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[CancellationCreate], call: CallDep
) -> Response[DocumentOut]:
    out, created = await documents.create_cancellation(
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return _created(out, created)


@post(
    f"{DocPath}/returns",
    opt={"roles": POST},
    operation_id="createReturn",
    tags=["orders"],
    summary="Return invoiced items: credit note with VAT, refund if paid, else offset",
)
async def create_return(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[ReturnCreate], call: CallDep
) -> Response[DocumentOut]:
    out, created = await documents.create_return(
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return _created(out, created)


@post(
    f"{DocPath}/goodwills",
    opt={"roles": POST},
    operation_id="createGoodwill",
    tags=["orders"],
    summary="Goodwill credit with VAT (items or a gross amount), refund if paid",
)
async def create_goodwill(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[GoodwillCreate], call: CallDep
) -> Response[DocumentOut]:
    out, created = await documents.create_goodwill(
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return _created(out, created)


@post(
    f"{DocPath}/payments",
    opt={"roles": POST},
    operation_id="createPayment",
    tags=["orders"],
    summary="A payment received outside Amazon Pay, e.g. a bank transfer",
)
async def create_payment(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[PaymentCreate], call: CallDep
) -> Response[DocumentOut]:
    out, created = await documents.create_payment(
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return _created(out, created)


DisputePath = Annotated[int, PathParameter(ge=1)]


@get("/disputes", opt={"roles": READ}, operation_id="listDisputes", tags=["disputes"])
async def read_disputes(
    business_code: Code,
    call: CallDep,
    state_filter: Annotated[str | None, QueryParameter(name="state", pattern="^(open|won|lost)$")] = None,
) -> list[DisputeOut]:
    return await disputes.list_disputes(call.ctx, await call.business(business_code), state_filter)


@post(
    "/disputes/{dispute_id:int}/evidence",
    opt={"roles": POST},
    operation_id="addDisputeEvidence",
    tags=["disputes"],
    status_code=201,
    summary="Attach evidence: invoice copy, proof of delivery, tracking, note",
)
async def dispute_evidence(
    business_code: Code, dispute_id: DisputePath, data: JSONBody[EvidenceIn], call: CallDep
) -> DisputeOut:
    return await disputes.add_evidence(call.ctx, await call.business(business_code), dispute_id, data)


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
    return await disputes.resolve_dispute(call.ctx, await call.business(business_code), dispute_id, data)


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[
        read_settings,
        write_settings,
        create_order,
        read_order,
        create_invoice,
        create_cancellation,
        create_return,
        create_goodwill,
        create_payment,
        read_disputes,
        dispute_evidence,
        dispute_outcome,
    ],
)


@post(
    "/v1/amazon-pay/ipn",
    opt={"public": True},
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
        runtime.spawn(process_ipn(ctx, runtime, merchant_id, notification_id))
    return {"status": "accepted"}
