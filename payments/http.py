"""HTTP routes of the payments plugin: Amazon Pay settings and the order use cases of a customer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, Router, get, post, put
from litestar.params import FromPath, JSONBody, PathParameter

from ledger.http.auth import ADMIN, POST, READ
from ledger.http.deps import Call, CallDep
from payments import documents, orders
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
    ],
)
