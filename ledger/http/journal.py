"""Journal routes: post entries (single and batch), read and filter them, reverse them, verify the chain."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from litestar import Response, Router, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ledger import entries, journal, posting
from ledger.audit import ActionOut
from ledger.chain import verify_chain
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import BadRequest, FieldError, Unprocessable
from ledger.http.auth import BOOK, POST, READ
from ledger.http.deps import BusinessCodePath, CallDep, Cursor, IdempotencyKey, PageLimit
from ledger.http.replay import created
from ledger.schemas import (
    METADATA_KEYS_MAX,
    BatchIn,
    BatchOut,
    CorrectionIn,
    EntryIn,
    EntryOut,
    Page,
    ReversalIn,
    VerifyOut,
)
from ledger.tenancy import accounts_with

__all__ = ["book_entry", "router"]

EntryIdPath = Annotated[int, PathParameter(ge=1, le=2**62)]
Code = BusinessCodePath


@post(
    "/entries",
    opt={"roles": BOOK},
    operation_id="postEntry",
    tags=["journal"],
    status_code=201,
    summary="Post a balanced journal entry",
)
async def post_entry(
    business_code: Code, data: JSONBody[CorrectionIn], idempotency_key: IdempotencyKey, call: CallDep
) -> Response[EntryOut]:
    business = await call.business(business_code)
    posted = await book_entry(call.ctx, business, call.principal.role, data, idempotency_key, call.request_sha256(data))
    return created(posted.entries[0], replayed=posted.replayed)


async def book_entry(
    ctx: Kontor, business: Business, role: str, data: CorrectionIn, idem_key: str, request_sha256: bytes
) -> journal.Posted:
    """Post one entry as `POST .../entries` does (this route and `ledger.http.fastpath`): the reason rules of
    `_with_reason`, the accounts of the business code, one coalesced posting. Errors: the KontorErrors of
    drafting and posting (404 account_not_found, 422 entry_invalid, 409 period_closed, ...)."""
    entry = _with_reason(data, role)
    accounts = await accounts_with(ctx, business, numbers=[line.account for line in entry.lines])
    draft = posting.draft_entry(entry, business, accounts.by_number)
    return await journal.post_entries(
        ctx, business, [draft], idem_key=idem_key, request_sha256=request_sha256, coalesce=True
    )


def _with_reason(data: CorrectionIn, role: str) -> EntryIn:
    """The entry to post, its reason in the metadata `reason` (where the web pages' correction form keeps it).

    An accountant's entry is a correction and states why (README, roles): 422 `reason_required` without
    `reason` or `metadata.reason`; 422 `reason_conflict` when both are given and differ."""
    given = data.metadata.get("reason")
    if data.reason is not None and given is not None and given != data.reason:
        raise Unprocessable(
            "reason_conflict",
            "the reason is given twice and differently: send `reason` only (it is kept as metadata `reason`)",
            [FieldError("metadata.reason", "differs from reason")],
        )
    reason = data.reason or given
    if not reason and role == "accountant":
        raise Unprocessable(
            "reason_required",
            "an accountant's entry is a correction and states why: send `reason` (it is kept as metadata `reason`)",
            [FieldError("reason", "required for accountant keys")],
        )
    if data.reason is None:
        return data
    metadata = {**data.metadata, "reason": data.reason}
    if len(metadata) > METADATA_KEYS_MAX:
        raise Unprocessable(
            "entry_invalid",
            f"the reason is kept as metadata `reason`: leave room for it in the {METADATA_KEYS_MAX} metadata keys",
            [FieldError("metadata", f"at most {METADATA_KEYS_MAX - 1} keys besides the reason")],
        )
    return msgspec.structs.replace(data, metadata=metadata)


@post(
    "/entries/batch",
    opt={"roles": POST},
    operation_id="postEntryBatch",
    tags=["journal"],
    status_code=201,
    summary="Post up to 1,000 entries atomically: all are booked or none",
    request_max_body_size=8_388_608,
)
async def post_batch(
    business_code: Code, data: JSONBody[BatchIn], idempotency_key: IdempotencyKey, call: CallDep
) -> Response[BatchOut]:
    if sum(len(e.lines) for e in data.entries) > 20_000:
        raise BadRequest("batch_too_large", "a batch carries at most 20,000 lines")
    business = await call.business(business_code)
    accounts = await accounts_with(call.ctx, business, numbers=[line.account for e in data.entries for line in e.lines])
    drafts = posting.draft_entries(data.entries, business, accounts.by_number)
    posted = await journal.post_entries(
        call.ctx, business, drafts, idem_key=idempotency_key, request_sha256=call.request_sha256(data)
    )
    return created(BatchOut(entries=posted.entries), replayed=posted.replayed)


@get(
    "/entries",
    opt={"roles": READ},
    operation_id="listEntries",
    tags=["journal"],
    summary="Entries in recording order, filtered; cursor pagination",
)
async def list_entries(
    business_code: Code,
    call: CallDep,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    account: Annotated[str | None, QueryParameter(max_length=20)] = None,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    reference: Annotated[str | None, QueryParameter(max_length=200)] = None,
    order_reference: Annotated[str | None, QueryParameter(max_length=200)] = None,
    metadata: Annotated[
        list[str] | None, QueryParameter(description="key:value, repeatable; entries whose metadata contain all pairs")
    ] = None,
    order: Annotated[str, QueryParameter(pattern="^(asc|desc)$")] = "asc",
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> Page[EntryOut]:
    business = await call.business(business_code)  # first: another merchant's code is a 404, whatever the query
    pairs: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise BadRequest("metadata_filter_invalid", f"metadata filter {item!r} is not key:value")
        pairs[key] = value
    where = entries.EntryFilter(
        from_date=from_date,
        to_date=to_date,
        account=account,
        customer=customer,
        reference=reference,
        order_reference=order_reference,
        metadata=pairs or None,
        descending=order == "desc",
    )
    return await entries.list_entries(call.ctx, business, where, cursor, limit)


@get("/entries/{entry_id:int}", opt={"roles": READ}, operation_id="getEntry", tags=["journal"])
async def get_entry(business_code: Code, entry_id: EntryIdPath, call: CallDep) -> EntryOut:
    return await entries.get_entry(call.ctx, await call.business(business_code), entry_id)


@post(
    "/entries/{entry_id:int}/reversal",
    opt={"roles": BOOK},
    operation_id="reverseEntry",
    tags=["journal"],
    status_code=201,
    summary="Post the mirror entry, linked both ways; an entry is reversed once",
)
async def reverse_entry(
    business_code: Code,
    entry_id: EntryIdPath,
    idempotency_key: IdempotencyKey,
    call: CallDep,
    data: JSONBody[ReversalIn | None] = None,
) -> Response[EntryOut]:
    body = data or ReversalIn()
    if body.reason is None and call.principal.role == "accountant":
        raise Unprocessable(
            "reason_required",
            "an accountant's reversal states why (it is kept in the audit trail)",
            [FieldError("reason", "required for accountant keys")],
        )
    posted = await journal.reverse_entry(
        call.ctx,
        await call.business(business_code),
        entry_id,
        body,
        idem_key=idempotency_key,
        request_sha256=call.request_sha256(body),
    )
    return created(posted.entries[0], replayed=posted.replayed)


@get(
    "/audit",
    opt={"roles": READ},
    operation_id="listAuditActions",
    tags=["journal"],
    summary="The audit trail: reversals, period closes, exceptions resolved or dismissed; who, when, why",
)
async def list_actions(
    business_code: Code,
    call: CallDep,
    action: Annotated[
        Literal["entry.reversed", "period.closed", "exception.resolved", "exception.dismissed"] | None,
        QueryParameter(),
    ] = None,
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> Page[ActionOut]:
    return await entries.list_actions(call.ctx, await call.business(business_code), action, cursor, limit)


@get(
    "/journal/verify",
    opt={"roles": READ},
    operation_id="verifyJournal",
    tags=["journal"],
    summary="Recompute the hash chain; report the first broken link",
)
async def verify_journal(business_code: Code, call: CallDep) -> VerifyOut:
    return await verify_chain(call.ctx.reports_pool, await call.business(business_code))


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[post_entry, post_batch, list_entries, get_entry, reverse_entry, list_actions, verify_journal],
)
