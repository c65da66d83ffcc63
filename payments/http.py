"""HTTP routes of the payments plugin: Amazon Pay settings and the order use cases of a customer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from ledger.context import Kontor
from ledger.errors import BadRequest, FieldError, Unprocessable
from ledger.http.auth import ADMIN, BOOK, POST, READ
from ledger.http.deps import ID_MAX, BusinessCodePath, Call, CallDep, IdPath, PageLimit
from ledger.http.replay import created
from ledger.money import AmountError, parse_amount
from payments import dispute_outcomes, disputes, documents, invoices, orders, reconciliation, webhooks
from payments.bank import STATEMENT_BYTES_MAX, StatementOut, import_statement
from payments.contest import contest_dispute
from payments.disputes import DisputeOut, EvidenceIn, OutcomeIn
from payments.ipn import IPN_BYTES_MAX, process_ipn, receive_ipn
from payments.reconciliation import ExceptionOut, ExceptionPage, Resolution
from payments.reports import SettlementList, fetch_reports, import_due_reports, list_settlements
from payments.runtime import Payments
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
from payments.settlement import SETTLEMENT_BYTES_MAX, SettlementOut, get_settlement, import_settlement
from payments.uploads import REPORT_TYPES, STATEMENT_TYPES, UPLOAD_RESPONSES, received_file
from payments.webhooks import CallbackCreate, CallbackCreated, CallbackOut, DeliveryPage

__all__ = ["amazon_pay_ipn", "merchant_router", "router"]

Code = BusinessCodePath
CustomerPath = Annotated[str, PathParameter(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")]
OrderPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
SettlementPath = Annotated[str, PathParameter(min_length=1, max_length=64)]
EVIDENCE_BYTES_MAX = 8 * 1024 * 1024  # ten items; files at most 5 MiB each once decoded


def _runtime(call: Call) -> Payments:
    runtime: Payments = call.request.app.state.payments
    return runtime


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
    return await put_settings(call.ctx, _runtime(call), await call.business(business_code), data)


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
        call.ctx, _runtime(call), await call.business(business_code), customer, data, call.request_sha256(data)
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
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
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
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
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
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
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
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
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
        call.ctx, _runtime(call), await call.business(business_code), customer, order, data, call.request_sha256(data)
    )
    return created(out, replayed=not is_new)


DisputePath = IdPath


def _state(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """The `state` query parameter, one of `allowed` (checked here so that the problem names `state`: the handler's
    argument has another name, as Litestar reserves `state`)."""
    if value is not None and value not in allowed:
        raise BadRequest(
            "request_invalid",
            f"the request does not match the schema: state: one of {', '.join(allowed)}",
            [FieldError("state", f"one of {', '.join(allowed)}")],
        )
    return value


def _state_parameter(allowed: tuple[str, ...], default: str | None = None) -> Any:
    """The `state` query parameter: its values in the OpenAPI document, checked by `_state` (after the business
    code, so another merchant's code stays a 404)."""
    extra = f" (default {default})" if default else ""
    return QueryParameter(
        name="state", max_length=16, description=" | ".join(allowed) + extra, schema_extra={"enum": list(allowed)}
    )


_DISPUTE_STATES = ("open", "won", "lost")
_EXCEPTION_STATES = ("open", "resolved", "dismissed", "all")
_DELIVERY_STATES = ("pending", "delivered", "failed")


@get("/disputes", opt={"roles": READ}, operation_id="listDisputes", tags=["disputes"])
async def read_disputes(
    business_code: Code,
    call: CallDep,
    state_filter: Annotated[str | None, _state_parameter(_DISPUTE_STATES)] = None,
) -> list[DisputeOut]:
    business = await call.business(business_code)
    return await disputes.list_disputes(call.ctx, business, _state(state_filter, _DISPUTE_STATES))


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
    return await contest_dispute(call.ctx, _runtime(call), await call.business(business_code), dispute_id, data)


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


@post(
    "/amazon-pay/settlements",
    opt={"roles": POST},
    operation_id="importSettlement",
    tags=["reconciliation"],
    request_max_body_size=SETTLEMENT_BYTES_MAX,
    responses=UPLOAD_RESPONSES,
    summary="Upload an Amazon Pay settlement report (flat-file CSV): book fees, reserves, payouts; reconcile",
    description="The body is the report file as Amazon delivers it (text/csv), or a multipart/form-data upload "
    "with the file as its one file part. 201 when imported, 201 with Idempotent-Replayed when the same file was "
    "imported before; 409 for another file with the same SettlementId; 415 for another media type; 422 naming "
    "line and column when any row is invalid (then nothing is booked).",
)
async def upload_settlement(business_code: Code, call: CallDep) -> Response[SettlementOut]:
    business = await call.business(business_code)
    async with received_file(call.request, accepted=REPORT_TYPES) as upload:
        out, is_new = await import_settlement(call.ctx, business, upload)
    return created(out, replayed=not is_new)


@get("/amazon-pay/settlements", opt={"roles": READ}, operation_id="listSettlements", tags=["reconciliation"])
async def read_settlements(business_code: Code, call: CallDep, limit: PageLimit = 100) -> SettlementList:
    """Imported settlements (uploaded or fetched through Amazon's Reporting API), newest first, and the reports
    Amazon listed that are not imported yet (new, or failed with the reason)."""
    return await list_settlements(call.ctx, await call.business(business_code), limit)


@post(
    "/amazon-pay/settlements/fetch",
    opt={"roles": POST},
    operation_id="fetchSettlementReports",
    tags=["reconciliation"],
    status_code=200,
    summary="Fetch new settlement reports from Amazon's Reporting API now and import them (the job does it hourly)",
    description="409 `amazon_pay_not_configured` for a business code not connected, `amazon_pay_access_refused` when "
    "Amazon refuses its credentials, 502 `gateway_unavailable` when Amazon is out of reach (reports are retried).",
)
async def fetch_settlements(business_code: Code, call: CallDep) -> SettlementList:
    business = await call.business(business_code)
    await fetch_reports(call.ctx, _runtime(call), only=business)
    await import_due_reports(call.ctx, _runtime(call), only=business)
    return await list_settlements(call.ctx, business, 100)


@get(
    "/amazon-pay/settlements/{settlement_id:str}",
    opt={"roles": READ},
    operation_id="getSettlement",
    tags=["reconciliation"],
)
async def read_settlement(business_code: Code, settlement_id: SettlementPath, call: CallDep) -> SettlementOut:
    return await get_settlement(call.ctx, await call.business(business_code), settlement_id)


@post(
    "/bank-statements",
    opt={"roles": POST},
    operation_id="importBankStatement",
    tags=["reconciliation"],
    request_max_body_size=STATEMENT_BYTES_MAX,
    responses=UPLOAD_RESPONSES,
    summary="Upload a bank statement (ISO 20022 CAMT.053 XML): clear payouts, match bank transfers",
    description="The body is the CAMT.053 file or a ZIP of them, or a multipart/form-data upload with the file as "
    "its one file part (415 for another media type). Each statement line is one journal entry. A credit line "
    "matches an uncleared Amazon Pay payout, pays the invoice or order its remittance information names (in part, "
    "in full or beyond), or a customer it names within `tolerance` of what is owed; the rest becomes reconciliation "
    "exceptions. Then the statement's balances are checked (opening = previous closing, opening + lines = closing, "
    "closing = the ledger's bank account): a failed check is an exception too. 422 `date_beyond_horizon` for "
    "booking dates more than KONTOR_POSTING_HORIZON_DAYS ahead.",
)
async def upload_bank_statement(
    business_code: Code,
    call: CallDep,
    tolerance: Annotated[
        str | None,
        QueryParameter(pattern=r"^[0-9]{1,9}(\.[0-9]{1,4})?$", description="default: KONTOR_BANK_MATCH_TOLERANCE"),
    ] = None,
) -> Response[StatementOut]:
    business = await call.business(business_code)
    text = tolerance if tolerance is not None else _runtime(call).settings.bank_match_tolerance
    try:
        allowed = parse_amount(text, business.currency, allow_zero=True)
    except AmountError as exc:
        raise Unprocessable("invalid_tolerance", str(exc), [FieldError("tolerance", str(exc))]) from exc
    async with received_file(call.request, accepted=STATEMENT_TYPES) as upload:
        out, is_new = await import_statement(call.ctx, business, upload, allowed)
    return created(out, replayed=not is_new)


@get(
    "/reconciliation/exceptions",
    opt={"roles": READ},
    operation_id="listReconciliationExceptions",
    tags=["reconciliation"],
)
async def read_exceptions(
    business_code: Code,
    call: CallDep,
    limit: PageLimit = 100,
    after: Annotated[int, QueryParameter(ge=0, le=ID_MAX, description="next_after of the previous page")] = 0,
    state_filter: Annotated[str, _state_parameter(_EXCEPTION_STATES, "open")] = "open",
    source: Annotated[str | None, QueryParameter(pattern="^(settlement|bank|dispute)$")] = None,
) -> ExceptionPage:
    business = await call.business(business_code)
    state = _state(state_filter, _EXCEPTION_STATES)
    return await reconciliation.list_exceptions(
        call.ctx,
        business,
        state=None if state == "all" else state,
        source=source,
        after=after,
        limit=limit,
    )


@post(
    "/reconciliation/exceptions/{exception_id:int}/resolution",
    opt={"roles": BOOK},
    operation_id="resolveReconciliationException",
    tags=["reconciliation"],
    status_code=200,
    summary="Resolve (book from SUSPENSE to an account) or dismiss (reverse the parking) with a reason",
)
async def resolve_exception(
    business_code: Code, exception_id: IdPath, data: JSONBody[Resolution], call: CallDep
) -> ExceptionOut:
    return await reconciliation.resolve_exception(call.ctx, await call.business(business_code), exception_id, data)


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
        upload_settlement,
        read_settlements,
        fetch_settlements,
        read_settlement,
        upload_bank_statement,
        read_exceptions,
        resolve_exception,
    ],
)


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
    allow_http = _runtime(call).settings.webhook_allow_http
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
    state_filter: Annotated[str | None, _state_parameter(_DELIVERY_STATES)] = None,
    callback_id: Annotated[int | None, QueryParameter(ge=1, le=ID_MAX)] = None,
) -> DeliveryPage:
    state = _state(state_filter, _DELIVERY_STATES)
    return await webhooks.list_deliveries(
        call.ctx, call.merchant_id, state=state, callback_id=callback_id, after=after, limit=limit
    )


merchant_router = Router(path="/v1", route_handlers=[create_callback, read_callbacks, delete_callback, read_deliveries])
