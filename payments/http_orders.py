"""Routes of the payments plugin for a customer's orders: Amazon Pay settings, orders, invoices and the other
documents (cancellations, returns, goodwill, payments)."""

from __future__ import annotations

from litestar import Response, get, post, put
from litestar.params import JSONBody

from ledger.http.auth import ADMIN, POST, READ
from ledger.http.deps import CallDep
from ledger.http.replay import created
from payments import documents, invoices, orders
from payments.http_params import Code, CustomerPath, OrderPath, runtime
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

__all__ = [
    "ROUTES",
    "create_cancellation",
    "create_goodwill",
    "create_invoice",
    "create_order",
    "create_payment",
    "create_return",
    "read_order",
    "read_settings",
    "write_settings",
]


@get("/amazon-pay/settings", opt={"roles": ADMIN}, operation_id="getAmazonPaySettings", tags=["amazon pay"])
async def read_settings(business_code: Code, call: CallDep) -> AmazonPaySettingsOut:
    return await get_settings(call.ctx, await call.business(business_code))


@put(
    "/amazon-pay/settings",
    opt={"roles": ADMIN},
    operation_id="putAmazonPaySettings",
    tags=["amazon pay"],
    summary="Connect the business code to its Amazon Pay merchant account (API v2 keys or delegated access)",
    description="Either `public_key_id` + `private_key` (the merchant's API keys from Integration Central), or "
    "`mws_auth_token` (the merchant authorized Kontor as solution provider; exchanged for a v2 token). Verified by "
    "signed calls to Amazon before anything is stored: a key or token Amazon refuses is a 422 naming the fields; "
    "keys whose payouts name another merchant id a 422 naming `amazon_merchant_id`; an Amazon merchant account "
    "connected to another merchant or business code is a 409 (a claim Amazon has not proven yields to credentials "
    "it proves); another account while orders are open a 409 `amazon_merchant_change_refused`. Secrets are "
    "write-only. See docs/amazon-pay.md §1.",
)
async def write_settings(
    business_code: Code, data: JSONBody[AmazonPaySettingsIn], call: CallDep
) -> AmazonPaySettingsOut:
    return await put_settings(call.ctx, runtime(call), await call.business(business_code), data)


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
    out, is_new = await orders.create_order(
        call.ctx, runtime(call), await call.business(business_code), customer, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


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
    description="Two-step orders: the invoice's gross is captured at Amazon first and the invoice booked once Amazon "
    "accepted the capture; a declined or refused capture is a problem (`amazon_pay_<reasonCode>`, 409/422) and "
    "books nothing, the same request again tries again; Amazon out of reach is a 502 after which the same request "
    "repeats the same capture (never a second one).",
)
async def create_invoice(
    business_code: Code, customer: CustomerPath, order: OrderPath, data: JSONBody[InvoiceCreate], call: CallDep
) -> Response[DocumentOut]:
    out, is_new = await invoices.create_invoice(
        call.ctx, runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


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
    out, is_new = await documents.create_cancellation(
        call.ctx, runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


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
    out, is_new = await documents.create_return(
        call.ctx, runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


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
    out, is_new = await documents.create_goodwill(
        call.ctx, runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


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
    out, is_new = await documents.create_payment(
        call.ctx, runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


ROUTES = (
    read_settings,
    write_settings,
    create_order,
    read_order,
    create_invoice,
    create_cancellation,
    create_return,
    create_goodwill,
    create_payment,
)
