"""Finding things over the API: customers (by number or name), orders with their documents, bank statements
with their lines, the receivables ageing and the VAT summary (`desk.find`). Read role; cursor-paged like the
journal (`next_cursor`, `limit` 1..500); a bad parameter is a 400 problem and reads nothing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Router, get
from litestar.params import FromQuery, PathParameter, QueryParameter
from msgspec import Struct

from desk import find
from ledger.domain import check_date
from ledger.errors import BadRequest, NotFound
from ledger.http.auth import READ
from ledger.http.deps import BusinessCodePath, CallDep, Cursor, PageLimit
from ledger.money import format_amount
from ledger.schemas import BalanceSide, Page

__all__ = ["router"]

Code = BusinessCodePath
Search = Annotated[
    str | None,
    QueryParameter(max_length=find.SEARCH_MAX, description="prefix of the customer number or name (any case)"),
]


@get("/customers", opt={"roles": READ}, operation_id="findCustomers", tags=["find"])
async def read_customers(
    business_code: Code,
    call: CallDep,
    q: Search = None,
    as_of: Annotated[
        date | None, QueryParameter(description="balance, open items and oldest due as of (default today)")
    ] = None,
    sort: Annotated[
        Literal["customer", "balance", "oldest_due", "dunning_level"],
        QueryParameter(
            description="customer number (default); balance: who owes most first; oldest_due: longest "
            "overdue first; dunning_level: highest first"
        ),
    ] = "customer",
    side: Annotated[
        BalanceSide | None, QueryParameter(description="DEBIT: customers who owe; CREDIT: who are owed; BALANCED")
    ] = None,
    overdue: Annotated[bool, QueryParameter(description="only customers with something overdue")] = False,
    min_level: Annotated[
        int, QueryParameter(ge=0, le=99, description="only customers at this dunning level or up")
    ] = 0,
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> Page[find.CustomerOut]:
    """Customers with a booked account: name (bill-to of the latest order), balance, oldest due date of what is
    open, current dunning level (none for a customer who owes nothing), all as of `as_of` (default today, like
    the customer's account and the balance sheet). In number order, or sorted by `sort`; filtered by `side`,
    `overdue`, `min_level` (`desk.find.find_customers`)."""
    business = await call.business(business_code)
    where = find.CustomerFilter(q=q, sort=sort, side=side, overdue=overdue, min_level=min_level)
    return await find.find_customers(
        call.ctx, business, q=q, cursor=cursor, limit=limit, as_of=as_of or call.ctx.today(), where=where
    )


@get("/orders", opt={"roles": READ}, operation_id="findOrders", tags=["find"])
async def read_orders(
    business_code: Code,
    call: CallDep,
    customer: Annotated[str | None, QueryParameter(max_length=64)] = None,
    from_date: Annotated[date | None, QueryParameter(name="from", description="order date from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to", description="order date to")] = None,
    status: Annotated[str | None, QueryParameter(max_length=32)] = None,
    cursor: Cursor = None,
    limit: PageLimit = 50,
) -> Page[find.OrderSummaryOut]:
    """Orders, newest first, with their invoices, credit notes (cancellation, return, goodwill), payments,
    Amazon Pay charges and refunds."""
    business = await call.business(business_code)
    _range(from_date, to_date)
    return await find.find_orders(
        call.ctx,
        business,
        customer=customer,
        from_date=from_date,
        to_date=to_date,
        status=status,
        cursor=cursor,
        limit=limit,
    )


@get("/bank-statements", opt={"roles": READ}, operation_id="listBankStatements", tags=["find"])
async def read_statements(
    business_code: Code,
    call: CallDep,
    account: Annotated[str | None, QueryParameter(max_length=64, description="IBAN or account id")] = None,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
) -> Page[find.BankStatementOut]:
    """Imported bank statements, latest first, each with its lines, what each line matched and the
    reconciliation exceptions it raised."""
    business = await call.business(business_code)
    _range(from_date, to_date)
    return await find.bank_statements(
        call.ctx, business, account=account, from_date=from_date, to_date=to_date, cursor=cursor, limit=limit
    )


@get(
    "/bank-statements/{statement_on:str}/{statement_id:str}",
    opt={"roles": READ},
    operation_id="getBankStatement",
    tags=["find"],
)
async def read_statement(
    business_code: Code,
    call: CallDep,
    statement_on: Annotated[str, PathParameter(max_length=10, description="the statement's date, YYYY-MM-DD")],
    statement_id: Annotated[str, PathParameter(min_length=1, max_length=64)],
    account: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Page[find.BankStatementOut]:
    """The statement(s) with this date and id: one per account unless `account` names one; `{items, next_cursor}`
    as the list of statements answers (a statement id and date name a handful at most: no next page)."""
    business = await call.business(business_code)
    try:
        day = date.fromisoformat(statement_on)
    except ValueError:
        raise BadRequest("path_parameter_invalid", "the statement's date is YYYY-MM-DD") from None
    check_date(day, "statement_on")
    found = await find.bank_statement(call.ctx, business, day, statement_id, account)
    if not found:
        raise NotFound("statement_not_found", f"no bank statement {statement_id} of {day.isoformat()}")
    return Page(items=found, next_cursor=None)


class AgeingRowOut(Struct, kw_only=True):
    customer: str
    name: str | None
    oldest_due: date | None
    not_due: str
    days_0_30: str
    days_31_60: str
    days_61_90: str
    days_over_90: str
    charges: str
    credit: str
    total: str


class AgeingPage(Struct, kw_only=True):
    as_of: date
    currency: str
    totals: dict[str, str]
    customers: int
    rows: list[AgeingRowOut]


@get("/reports/receivables-ageing", opt={"roles": READ}, operation_id="getReceivablesAgeing", tags=["reports"])
async def read_ageing(
    business_code: Code,
    call: CallDep,
    as_of: FromQuery[date | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 500,
) -> AgeingPage:
    """Open receivables per customer by days past due (not due, 0-30, 31-60, 61-90, over 90), fees and
    interest, credit; the longest overdue first (`limit` rows; the totals cover every customer)."""
    business = await call.business(business_code)
    report = await find.ageing(call.ctx, business, as_of or call.ctx.today())
    cur = report.currency

    def money(v: int) -> str:
        return format_amount(v, cur)

    return AgeingPage(
        as_of=report.as_of,
        currency=cur,
        totals={k: money(v) for k, v in report.totals.items()},
        customers=report.customers,
        rows=[
            AgeingRowOut(
                customer=r.customer,
                name=r.name,
                oldest_due=r.oldest_due,
                not_due=money(r.not_due),
                days_0_30=money(r.days_0_30),
                days_31_60=money(r.days_31_60),
                days_61_90=money(r.days_61_90),
                days_over_90=money(r.days_over_90),
                charges=money(r.charges),
                credit=money(r.credit),
                total=money(r.total),
            )
            for r in report.rows[:limit]
        ],
    )


class VatRowOut(Struct, kw_only=True):
    month: str  # YYYY-MM
    rate: str
    sales: str
    sales_tax: str
    reductions: str
    reductions_tax: str
    bad_debts: str
    bad_debts_tax: str
    taxable: str  # sales - reductions - bad debts
    tax: str


@get("/reports/vat-summary", opt={"roles": READ}, operation_id="getVatSummary", tags=["reports"])
async def read_vat(
    business_code: Code,
    call: CallDep,
    from_date: Annotated[date, QueryParameter(name="from")],
    to_date: Annotated[date, QueryParameter(name="to")],
) -> list[VatRowOut]:
    """Per month and VAT rate: taxable sales, credit notes and §17 UStG bad-debt corrections, and their VAT,
    as booked (at most 24 months)."""
    business = await call.business(business_code)
    _range(from_date, to_date)
    if (to_date - from_date).days > 731:
        raise BadRequest("query_parameter_invalid", "the VAT summary covers at most 24 months")
    cur = business.currency
    return [
        VatRowOut(
            month=f"{r.month:%Y-%m}",
            rate=format(r.rate.normalize(), "f"),
            sales=format_amount(r.sales, cur),
            sales_tax=format_amount(r.sales_tax, cur),
            reductions=format_amount(r.reductions, cur),
            reductions_tax=format_amount(r.reductions_tax, cur),
            bad_debts=format_amount(r.bad_debts, cur),
            bad_debts_tax=format_amount(r.bad_debts_tax, cur),
            taxable=format_amount(r.base, cur),
            tax=format_amount(r.tax, cur),
        )
        for r in await find.vat_summary(call.ctx, business, from_date, to_date)
    ]


def _range(from_date: date | None, to_date: date | None) -> None:
    if from_date is not None and to_date is not None and from_date > to_date:
        raise BadRequest("query_parameter_invalid", "from is after to")


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[read_customers, read_orders, read_statements, read_statement, read_ageing, read_vat],
)
