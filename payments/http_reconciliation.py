"""Routes of the payments plugin for reconciliation: settlement reports, bank statements, and the exceptions
either leaves."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, post
from litestar.params import JSONBody, QueryParameter

from ledger.errors import FieldError, Unprocessable
from ledger.http.auth import BOOK, POST, READ
from ledger.http.deps import ID_MAX, CallDep, IdPath, PageLimit
from ledger.http.replay import created
from ledger.money import AmountError, parse_amount
from payments import reconciliation
from payments.bank import STATEMENT_BYTES_MAX, StatementOut, import_statement
from payments.http_params import Code, SettlementPath, runtime, state_parameter, state_value
from payments.reconciliation import ExceptionOut, ExceptionPage, Resolution
from payments.reports import SettlementList, fetch_reports, import_due_reports, list_settlements
from payments.settlement import SETTLEMENT_BYTES_MAX, SettlementOut, get_settlement, import_settlement
from payments.uploads import REPORT_TYPES, STATEMENT_TYPES, UPLOAD_RESPONSES, received_file

__all__ = [
    "ROUTES",
    "fetch_settlements",
    "read_exceptions",
    "read_settlement",
    "read_settlements",
    "resolve_exception",
    "upload_bank_statement",
    "upload_settlement",
]

_EXCEPTION_STATES = ("open", "resolved", "dismissed", "all")


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
    await fetch_reports(call.ctx, runtime(call), only=business)
    await import_due_reports(call.ctx, runtime(call), only=business)
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
    text = tolerance if tolerance is not None else runtime(call).settings.bank_match_tolerance
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
    state_filter: Annotated[str, state_parameter(_EXCEPTION_STATES, "open")] = "open",
    source: Annotated[str | None, QueryParameter(pattern="^(settlement|bank|dispute)$")] = None,
) -> ExceptionPage:
    business = await call.business(business_code)
    state = state_value(state_filter, _EXCEPTION_STATES)
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


ROUTES = (
    upload_settlement,
    read_settlements,
    fetch_settlements,
    read_settlement,
    upload_bank_statement,
    read_exceptions,
    resolve_exception,
)
