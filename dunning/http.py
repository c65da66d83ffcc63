"""HTTP routes of the dunning plugin: policy, open items, runs, notices, pauses, collection, base rates."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

from litestar import Response, Router, delete, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from dunning import accounts, letters, notices, policy, runlog, runs
from dunning.accounts import CaseOut, CollectionStatusIn, OpenItemsOut, PauseIn
from dunning.notices import NoticeOut
from dunning.policy import BaseRateIn, BaseRateOut, PolicyIn, PolicyOut
from dunning.runlog import RunOut
from ledger.entries import decode_cursor, encode_cursor
from ledger.http.access import HTML_HEADERS
from ledger.http.auth import ADMIN, OPERATOR, POST, READ
from ledger.http.deps import ID_MAX, BusinessCodePath, CallDep, Cursor, IdPath, PageLimit
from ledger.http.problems import also_files
from ledger.schemas import DatedBody, EffectiveDate, Page

__all__ = ["base_rate_routes", "router"]

Code = BusinessCodePath
CustomerPath = Annotated[str, PathParameter(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")]
OrderPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,20}$")]


class RunIn(DatedBody, frozen=True, forbid_unknown_fields=True, kw_only=True):
    as_of: EffectiveDate | None = None  # default: today; fees and interest are booked on it
    dry_run: bool = False


@get("/dunning/policy", opt={"roles": READ}, operation_id="getDunningPolicy", tags=["dunning"])
async def read_policy(business_code: Code, call: CallDep) -> PolicyOut:
    return await policy.get_policy(call.ctx, await call.business(business_code))


@put("/dunning/policy", opt={"roles": ADMIN}, operation_id="putDunningPolicy", tags=["dunning"])
async def write_policy(business_code: Code, data: JSONBody[PolicyIn], call: CallDep) -> PolicyOut:
    return await policy.put_policy(call.ctx, await call.business(business_code), data)


@get(
    "/customers/{customer:str}/open-items",
    opt={"roles": READ},
    operation_id="getOpenItems",
    tags=["dunning"],
    summary="What the customer owes: principal per order and VAT rate, fees, interest; the dunning state",
)
async def read_open_items(
    business_code: Code,
    customer: CustomerPath,
    call: CallDep,
    as_of: Annotated[date | None, QueryParameter(description="default: today")] = None,
) -> OpenItemsOut:
    return await accounts.customer_open_items(
        call.ctx, await call.business(business_code), customer, as_of or call.ctx.today()
    )


@post(
    "/dunning/runs",
    opt={"roles": POST},
    operation_id="runDunning",
    tags=["dunning"],
    status_code=200,
    summary="Run dunning now (or with dry_run, show what a run would do); 409 while another run is going",
)
async def start_run(business_code: Code, data: JSONBody[RunIn], call: CallDep) -> RunOut:
    return await runs.run_dunning(
        call.ctx,
        await call.business(business_code),
        as_of=data.as_of or call.ctx.today(),
        trigger="api",
        dry_run=data.dry_run,
    )


@get("/dunning/runs", opt={"roles": READ}, operation_id="listDunningRuns", tags=["dunning"])
async def read_runs(
    business_code: Code,
    call: CallDep,
    limit: PageLimit = 50,
    before: Annotated[
        int | None, QueryParameter(ge=1, le=ID_MAX, description="run_id of the last run of the previous page")
    ] = None,
) -> list[RunOut]:
    return await runlog.list_runs(call.ctx, await call.business(business_code), before=before, limit=limit)


@get("/dunning/runs/{run_id:int}", opt={"roles": READ}, operation_id="getDunningRun", tags=["dunning"])
async def read_run(business_code: Code, run_id: IdPath, call: CallDep) -> RunOut:
    return await runlog.get_run(call.ctx, await call.business(business_code), run_id)


@get("/dunning/notices", opt={"roles": READ}, operation_id="listDunningNotices", tags=["dunning"])
async def read_notices(
    business_code: Code,
    call: CallDep,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    cursor: Cursor = None,
    limit: PageLimit = 100,
) -> Page[NoticeOut]:
    """Notices in the order they were issued, `limit` a page; `next_cursor` pages on (as customers, orders and
    bank statements do)."""
    business = await call.business(business_code)
    after = decode_cursor(cursor) if cursor else 0
    found = await notices.list_notices(call.ctx, business, customer=customer, after=after, limit=limit + 1)
    items = found[:limit]
    return Page(items=items, next_cursor=encode_cursor(items[-1].notice_id) if len(found) > limit else None)


@get("/dunning/notices/{notice_id:int}", opt={"roles": READ}, operation_id="getDunningNotice", tags=["dunning"])
async def read_notice(business_code: Code, notice_id: IdPath, call: CallDep) -> NoticeOut:
    return await notices.get_notice(call.ctx, await call.business(business_code), notice_id)


@get(
    "/dunning/notices/{notice_id:int}/document",
    opt={"roles": READ},
    operation_id="getDunningNoticeDocument",
    tags=["dunning"],
    media_type="text/html",
)
async def read_notice_document(business_code: Code, notice_id: IdPath, call: CallDep) -> Response[str]:
    business = await call.business(business_code)
    notice = await notices.get_notice(call.ctx, business, notice_id)
    name = await call.ctx.pool.fetchval("SELECT name FROM merchants WHERE merchant_id = $1", business.merchant_id)
    # Litestar adds "; charset=utf-8" to text/html itself: naming it here too sent the charset twice
    return Response(notices.render_html(notice, str(name)), media_type="text/html", headers=HTML_HEADERS)


_PDF = {200: ResponseSpec(bytes, media_type="application/pdf", description="the letter (A4, DIN 5008 form B)")}
# the letter's logo is a data: URL; nothing else is loaded
_LETTER_HEADERS = {
    **HTML_HEADERS,
    "Content-Security-Policy": HTML_HEADERS["Content-Security-Policy"] + "; img-src data:",
}
_LETTER_409 = (
    "409 `profile_missing` until the business profile (letterhead, bank) is set: PUT .../profile. 409 "
    "`address_missing` when the bill-to has no postal address (the missing fields named). The PDF only: 409 "
    "`characters_unprintable` when a stored text has a character none of the letter's fonts has (the field named), "
    "409 `address_too_long` when street and place do not fit the envelope's window."
)


async def _pdf(letter: letters.Letter, name: str) -> Response[bytes]:
    data = await asyncio.to_thread(letters.render_pdf, letter)  # CPU work off the event loop
    return Response(
        data,
        media_type="application/pdf",
        headers={**HTML_HEADERS, "Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@get(
    "/dunning/notices/{notice_id:int}/letter.pdf",
    opt={"roles": READ},
    operation_id="getDunningLetterPdf",
    tags=["dunning"],
    media_type="application/pdf",
    responses=_PDF,
    summary="The notice as a letter for a window envelope (PDF): letterhead, addressee, invoices, fees, interest, "
    "bank details and payment reference",
    description=_LETTER_409,
)
async def read_notice_letter_pdf(business_code: Code, notice_id: IdPath, call: CallDep) -> Response[bytes]:
    letter = await letters.notice_letter(call.ctx, await call.business(business_code), notice_id)
    return await _pdf(letter, f"{'mahnung' if letter.language == 'de' else 'dunning-notice'}-{notice_id}")


@get(
    "/dunning/notices/{notice_id:int}/letter.html",
    opt={"roles": READ},
    operation_id="getDunningLetterHtml",
    tags=["dunning"],
    media_type="text/html",
    summary="The notice as a letter (HTML, the same content as the PDF)",
    description=_LETTER_409,
)
async def read_notice_letter_html(business_code: Code, notice_id: IdPath, call: CallDep) -> Response[str]:
    letter = await letters.notice_letter(call.ctx, await call.business(business_code), notice_id)
    return Response(letters.render_html(letter), media_type="text/html", headers=_LETTER_HEADERS)


@get(
    "/collection/handovers/{case_id:int}/letter.pdf",
    opt={"roles": READ},
    operation_id="getCollectionLetterPdf",
    tags=["collection"],
    media_type="application/pdf",
    responses=_PDF,
    summary="The letter telling the customer the debt was handed over for collection (PDF)",
    description=_LETTER_409,
)
async def read_case_letter_pdf(business_code: Code, case_id: IdPath, call: CallDep) -> Response[bytes]:
    letter = await letters.case_letter(call.ctx, await call.business(business_code), case_id)
    return await _pdf(letter, f"{'inkasso' if letter.language == 'de' else 'collection'}-{case_id}")


@get(
    "/collection/handovers/{case_id:int}/letter.html",
    opt={"roles": READ},
    operation_id="getCollectionLetterHtml",
    tags=["collection"],
    media_type="text/html",
    summary="The collection hand-over letter (HTML)",
    description=_LETTER_409,
)
async def read_case_letter_html(business_code: Code, case_id: IdPath, call: CallDep) -> Response[str]:
    letter = await letters.case_letter(call.ctx, await call.business(business_code), case_id)
    return Response(letters.render_html(letter), media_type="text/html", headers=_LETTER_HEADERS)


@put(
    "/customers/{customer:str}/dunning-pause",
    opt={"roles": POST},
    operation_id="pauseCustomerDunning",
    tags=["dunning"],
    status_code=204,
)
async def pause_customer(business_code: Code, customer: CustomerPath, data: JSONBody[PauseIn], call: CallDep) -> None:
    await accounts.pause_customer(call.ctx, await call.business(business_code), customer, data)


@delete(
    "/customers/{customer:str}/dunning-pause",
    opt={"roles": POST},
    operation_id="resumeCustomerDunning",
    tags=["dunning"],
    status_code=204,
)
async def resume_customer(business_code: Code, customer: CustomerPath, call: CallDep) -> None:
    await accounts.pause_customer(call.ctx, await call.business(business_code), customer, None)


@put(
    "/orders/{order:str}/dunning-pause",
    opt={"roles": POST},
    operation_id="pauseOrderDunning",
    tags=["dunning"],
    status_code=204,
)
async def pause_order(business_code: Code, order: OrderPath, data: JSONBody[PauseIn], call: CallDep) -> None:
    await accounts.pause_item(call.ctx, await call.business(business_code), order, data)


@delete(
    "/orders/{order:str}/dunning-pause",
    opt={"roles": POST},
    operation_id="resumeOrderDunning",
    tags=["dunning"],
    status_code=204,
)
async def resume_order(business_code: Code, order: OrderPath, call: CallDep) -> None:
    await accounts.pause_item(call.ctx, await call.business(business_code), order, None)


@get(
    "/collection/handovers",
    opt={"roles": READ},
    operation_id="listCollectionHandovers",
    tags=["collection"],
    summary="Cases for the collection agency (?format=csv for the hand-over file)",
    responses={
        200: ResponseSpec(
            list[CaseOut], description="the cases (JSON), or the hand-over file (?format=csv)", generate_examples=False
        )
    },
    operation_class=also_files("text/csv"),
)
async def read_handovers(
    business_code: Code,
    call: CallDep,
    status: Annotated[int | None, QueryParameter(ge=90, le=99)] = 90,
    format: Annotated[str, QueryParameter(pattern="^(json|csv)$")] = "json",
) -> Response[object]:
    cases = await accounts.handovers(call.ctx, await call.business(business_code), status)
    if format == "csv":
        return Response(accounts.handovers_csv(cases), media_type="text/csv")
    return Response(cases)


@post(
    "/collection/handovers",
    opt={"roles": POST},
    operation_id="transferCollectionHandovers",
    tags=["collection"],
    status_code=200,
    summary="Hand the ready cases (status 90) over to the agency (91); returns them",
)
async def transfer(business_code: Code, call: CallDep) -> list[CaseOut]:
    return await accounts.transfer_handovers(call.ctx, await call.business(business_code), call.ctx.today())


@post(
    "/collection/status",
    opt={"roles": POST},
    operation_id="recordCollectionStatus",
    tags=["collection"],
    status_code=200,
    summary="The agency's feedback: 95 recalled, 96 denied, 97 closed by merchant, 98 failed (write-off), 99 paid",
)
async def collection_status(business_code: Code, data: JSONBody[CollectionStatusIn], call: CallDep) -> CaseOut:
    return await accounts.record_collection_status(call.ctx, await call.business(business_code), data)


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[
        read_policy,
        write_policy,
        read_open_items,
        start_run,
        read_runs,
        read_run,
        read_notices,
        read_notice,
        read_notice_document,
        read_notice_letter_pdf,
        read_notice_letter_html,
        read_case_letter_pdf,
        read_case_letter_html,
        pause_customer,
        resume_customer,
        pause_order,
        resume_order,
        read_handovers,
        transfer,
        collection_status,
    ],
)


@get("/base-rates", opt={"roles": READ | OPERATOR}, operation_id="listBaseRates", tags=["dunning"])
async def read_base_rates(call: CallDep) -> list[BaseRateOut]:
    return await policy.list_base_rates(call.ctx)


@put(
    "/base-rates/{valid_from:date}",
    opt={"roles": OPERATOR},
    operation_id="putBaseRate",
    tags=["dunning"],
    summary="Set the base rate (§247 BGB) valid from a date (the operator, when the Bundesbank publishes it)",
)
async def write_base_rate(valid_from: FromPath[date], data: JSONBody[BaseRateIn], call: CallDep) -> BaseRateOut:
    return await policy.put_base_rate(call.ctx, valid_from, data)


base_rate_routes = Router(path="/v1", route_handlers=[read_base_rates, write_base_rate])
