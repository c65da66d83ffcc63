"""Onboarding routes: merchants (operator), business codes and API keys (admin)."""

from __future__ import annotations

from litestar import Router, delete, get, post
from litestar.params import JSONBody

from ledger import tenancy
from ledger.http.auth import ADMIN, OPERATOR, READ
from ledger.http.deps import BusinessCodePath, CallDep, IdPath
from ledger.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    BusinessCreate,
    BusinessOut,
    MerchantCreate,
    MerchantCreated,
)

__all__ = ["router"]


@post(
    "/merchants",
    opt={"roles": OPERATOR},
    operation_id="createMerchant",
    tags=["onboarding"],
    summary="Create a merchant with its business codes; returns its first admin key (shown once)",
)
async def create_merchant(data: JSONBody[MerchantCreate], call: CallDep) -> MerchantCreated:
    return await tenancy.create_merchant(call.ctx, data.name, data.businesses)


@get("/businesses", opt={"roles": READ}, operation_id="listBusinesses", tags=["onboarding"])
async def list_businesses(call: CallDep) -> list[BusinessOut]:
    return await tenancy.list_businesses(call.ctx, call.merchant_id)


@post(
    "/businesses",
    opt={"roles": ADMIN},
    operation_id="createBusiness",
    tags=["onboarding"],
    summary="Add a business code (legal entity) with the chart of accounts template",
)
async def create_business(data: JSONBody[BusinessCreate], call: CallDep) -> BusinessOut:
    return await tenancy.add_business(call.ctx, call.merchant_id, data)


@get("/businesses/{business_code:int}", opt={"roles": READ}, operation_id="getBusiness", tags=["onboarding"])
async def get_business(business_code: BusinessCodePath, call: CallDep) -> BusinessOut:
    return await tenancy.describe_business(call.ctx, await call.business(business_code))


@get("/api-keys", opt={"roles": ADMIN}, operation_id="listApiKeys", tags=["onboarding"])
async def list_api_keys(call: CallDep) -> list[ApiKeyOut]:
    return await tenancy.list_keys(call.ctx, call.merchant_id)


@post(
    "/api-keys",
    opt={"roles": ADMIN},
    operation_id="createApiKey",
    tags=["onboarding"],
    summary="Issue an API key with a role; the key is shown once, only its hash is stored",
)
async def create_api_key(data: JSONBody[ApiKeyCreate], call: CallDep) -> ApiKeyCreated:
    return await tenancy.issue_key(call.ctx.pool, call.merchant_id, data.name, data.role)


@delete(
    "/api-keys/{key_id:int}",
    opt={"roles": ADMIN},
    operation_id="revokeApiKey",
    tags=["onboarding"],
    status_code=200,
    summary="Revoke an API key (effective at once here, within seconds everywhere)",
)
async def revoke_api_key(key_id: IdPath, call: CallDep) -> ApiKeyOut:
    return await tenancy.revoke_key(call.ctx, call.merchant_id, key_id)


router = Router(
    path="/v1",
    route_handlers=[
        create_merchant,
        list_businesses,
        create_business,
        get_business,
        list_api_keys,
        create_api_key,
        revoke_api_key,
    ],
)
