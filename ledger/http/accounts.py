"""Account routes: the chart of accounts, balances, registers and customer accounts."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Router, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ledger import registers, reports, tenancy
from ledger.http.auth import ADMIN, READ
from ledger.http.deps import BusinessCodePath, CallDep, Cursor, PageLimit
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
Code = BusinessCodePath


@get("/accounts", opt={"roles": READ}, operation_id="listAccounts", tags=["accounts"])
async def list_accounts(business_code: Code, call: CallDep, role: RoleQuery = None) -> list[AccountOut]:
    return await tenancy.list_accounts(call.ctx, await call.business(business_code), role)


@post("/accounts", opt={"roles": ADMIN}, operation_id="createAccount", tags=["accounts"])
async def create_account(business_code: Code, data: JSONBody[AccountCreate], call: CallDep) -> AccountOut:
    return await tenancy.create_account(call.ctx, await call.business(business_code), data)


@get("/accounts/{number:str}", opt={"roles": READ}, operation_id="getAccount", tags=["accounts"])
async def get_account(business_code: Code, number: AccountNumberPath, call: CallDep) -> AccountOut:
    return tenancy.render_account(await tenancy.get_account(call.ctx, await call.business(business_code), number))


@patch(
    "/accounts/{number:str}",
    opt={"roles": ADMIN},
    operation_id="updateAccount",
    tags=["accounts"],
    summary="Rename an account or set the merchant's own G/L number",
)
async def update_account(
    business_code: Code, number: AccountNumberPath, data: JSONBody[AccountUpdate], call: CallDep
) -> AccountOut:
    return await tenancy.update_account(call.ctx, await call.business(business_code), number, data)


@get("/accounts/{number:str}/balance", opt={"roles": READ}, operation_id="getAccountBalance", tags=["balances"])
async def account_balance(
    business_code: Code, number: AccountNumberPath, call: CallDep, as_of: AsOf = None, customer: CustomerQuery = None
) -> AccountBalanceOut:
    business = await call.business(business_code)
    return await reports.account_balance(call.ctx, business, number, as_of=as_of, customer=customer)


@get(
    "/accounts/{number:str}/register",
    opt={"roles": READ},
    operation_id="getAccountRegister",
    tags=["balances"],
    summary="The account's lines in date order with the running balance",
)
async def account_register(
    business_code: Code,
    number: AccountNumberPath,
    call: CallDep,
    from_date: Annotated[date | None, QueryParameter(name="from")] = None,
    to_date: Annotated[date | None, QueryParameter(name="to")] = None,
    customer: CustomerQuery = None,
    currency: Annotated[str | None, QueryParameter(pattern=r"^[A-Z]{3}$")] = None,
    cursor: Cursor = None,
    limit: PageLimit = 100,
) -> RegisterOut:
    return await registers.register(
        call.ctx,
        await call.business(business_code),
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
    business_code: Code, customer: CustomerPath, call: CallDep, as_of: AsOf = None
) -> CustomerAccountOut:
    return await reports.customer_account(call.ctx, await call.business(business_code), customer, as_of=as_of)


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[
        list_accounts,
        create_account,
        get_account,
        update_account,
        account_balance,
        account_register,
        customer_account,
    ],
)
