"""Onboarding routes: merchants (operator), business codes and API keys (admin)."""

from __future__ import annotations

from litestar import Router, delete, get, post
from litestar.params import FromPath, JSONBody

from ledger import tenancy
from ledger.http.auth import ADMIN, OPERATOR, READ
from ledger.http.deps import BusinessDep, Caller, Ctx, merchant_of
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
async def create_merchant(data: JSONBody[MerchantCreate], ctx: Ctx) -> MerchantCreated:
    return await tenancy.create_merchant(ctx, data.name, data.businesses)


@get("/businesses", opt={"roles": READ}, operation_id="listBusinesses", tags=["onboarding"])
async def list_businesses(ctx: Ctx, principal: Caller) -> list[BusinessOut]:
    return await tenancy.list_businesses(ctx, merchant_of(principal))


@post(
    "/businesses",
    opt={"roles": ADMIN},
    operation_id="createBusiness",
    tags=["onboarding"],
    summary="Add a business code (legal entity) with the chart of accounts template",
)
async def create_business(data: JSONBody[BusinessCreate], ctx: Ctx, principal: Caller) -> BusinessOut:
    return await tenancy.add_business(ctx, merchant_of(principal), data)


@get("/businesses/{business_code:int}", opt={"roles": READ}, operation_id="getBusiness", tags=["onboarding"])
async def get_business(ctx: Ctx, business: BusinessDep) -> BusinessOut:
    return await tenancy.describe_business(ctx, business)


@get("/api-keys", opt={"roles": ADMIN}, operation_id="listApiKeys", tags=["onboarding"])
async def list_api_keys(ctx: Ctx, principal: Caller) -> list[ApiKeyOut]:
    return await tenancy.list_keys(ctx, merchant_of(principal))


@post(
    "/api-keys",
    opt={"roles": ADMIN},
    operation_id="createApiKey",
    tags=["onboarding"],
    summary="Issue an API key with a role; the key is shown once, only its hash is stored",
)
async def create_api_key(data: JSONBody[ApiKeyCreate], ctx: Ctx, principal: Caller) -> ApiKeyCreated:
    return await tenancy.issue_key(ctx.pool, merchant_of(principal), data.name, data.role)


@delete(
    "/api-keys/{key_id:int}",
    opt={"roles": ADMIN},
    operation_id="revokeApiKey",
    tags=["onboarding"],
    status_code=200,
    summary="Revoke an API key (effective at once here, within seconds everywhere)",
)
async def revoke_api_key(key_id: FromPath[int], ctx: Ctx, principal: Caller) -> ApiKeyOut:
    return await tenancy.revoke_key(ctx, merchant_of(principal), key_id)


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
