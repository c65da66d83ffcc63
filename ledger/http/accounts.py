"""Account routes: the chart of accounts, balances, registers and customer accounts."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Router, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ledger import reports, tenancy
from ledger.http.auth import ADMIN, READ
from ledger.http.deps import BusinessDep, Ctx, Cursor, PageLimit
from ledger.schemas import (
    AccountBalanceOut,
    AccountCreate,
    AccountOut,
    AccountUpdate,
    CustomerAccountOut,
    RegisterOut,
)

__all__ = ["router"]

AccountNumberPath = Annotated[str, PathParameter(max_length=20, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,19}$")]
CustomerPath = Annotated[str, PathParameter(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$")]
CustomerQuery = Annotated[str | None, QueryParameter(max_length=64, description="Only this customer's lines")]
RoleQuery = Annotated[str | None, QueryParameter(max_length=32, description="Filter by role key, e.g. AR")]
AsOf = Annotated[date | None, QueryParameter(description="Effective date the balance is taken at (inclusive)")]


@get("/", opt={"roles": READ}, operation_id="listAccounts", tags=["accounts"])
async def list_accounts(ctx: Ctx, business: BusinessDep, role: RoleQuery = None) -> list[AccountOut]:
    return await tenancy.list_accounts(ctx, business, role)


@post("/", opt={"roles": ADMIN}, operation_id="createAccount", tags=["accounts"])
async def create_account(data: JSONBody[AccountCreate], ctx: Ctx, business: BusinessDep) -> AccountOut:
    return await tenancy.create_account(ctx, business, data)


@get("/{number:str}", opt={"roles": READ}, operation_id="getAccount", tags=["accounts"])
async def get_account(number: AccountNumberPath, ctx: Ctx, business: BusinessDep) -> AccountOut:
    return tenancy.render_account(await tenancy.get_account(ctx, business, number))


@patch(
    "/{number:str}",
    opt={"roles": ADMIN},
    operation_id="updateAccount",
    tags=["accounts"],
    summary="Rename an account or set the merchant's own G/L number",
)
async def update_account(
    number: AccountNumberPath, data: JSONBody[AccountUpdate], ctx: Ctx, business: BusinessDep
) -> AccountOut:
    return await tenancy.update_account(ctx, business, number, data)


@get("/{number:str}/balance", opt={"roles": READ}, operation_id="getAccountBalance", tags=["balances"])
async def account_balance(
    number: AccountNumberPath,
    ctx: Ctx,
    business: BusinessDep,
    as_of: AsOf = None,
    customer: CustomerQuery = None,
) -> AccountBalanceOut:
    return await reports.account_balance(ctx, business, number, as_of=as_of, customer=customer)


@get(
    "/{number:str}/register",
    opt={"roles": READ},
    operation_id="getAccountRegister",
    tags=["balances"],
    summary="The account's lines in date order with the running balance",
)
async def account_register(
    number: AccountNumberPath,
    ctx: Ctx,
    business: BusinessDep,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    customer: CustomerQuery = None,
    currency: Annotated[str | None, QueryParameter(pattern=r"^[A-Z]{3}$")] = None,
    cursor: Cursor = None,
    limit: PageLimit = 100,
) -> RegisterOut:
    return await reports.register(
        ctx,
        business,
        number,
        from_date=from_date,
        to_date=to_date,
        customer=customer,
        currency=currency,
        cursor=cursor,
        limit=limit,
    )


@get(
    "/customers/{customer:str}/account",
    opt={"roles": READ},
    operation_id="getCustomerAccount",
    tags=["balances"],
    summary="A customer's account: balance and state DEBIT / CREDIT / BALANCED",
)
async def customer_account(
    customer: CustomerPath, ctx: Ctx, business: BusinessDep, as_of: AsOf = None
) -> CustomerAccountOut:
    return await reports.customer_account(ctx, business, customer, as_of=as_of)


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[
        Router(
            path="/accounts",
            route_handlers=[
                list_accounts,
                create_account,
                get_account,
                update_account,
                account_balance,
                account_register,
            ],
        ),
        customer_account,
    ],
)
