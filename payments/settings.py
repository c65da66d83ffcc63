"""Amazon Pay settings per business code: the merchant's delegated access and its payment execution.

The MWS auth token is write-only: stored, used for calls, never returned and never logged (the
Credentials type hides it from repr).
"""

from __future__ import annotations

import asyncpg

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable
from payments.amazon.client import Credentials
from payments.schemas import AmazonPaySettingsIn, AmazonPaySettingsOut

__all__ = ["MerchantSettings", "get_settings", "load_settings", "put_settings"]

_COLUMNS = "seller_id, mws_auth_token, region, sandbox, payment_execution, updated_at"


class MerchantSettings:
    def __init__(self, row: asyncpg.Record) -> None:
        self.credentials = Credentials(
            seller_id=row["seller_id"],
            mws_auth_token=row["mws_auth_token"],
            region=row["region"],
            sandbox=row["sandbox"],
        )
        self.payment_execution: str = row["payment_execution"]
        self.out = AmazonPaySettingsOut(
            seller_id=row["seller_id"],
            region=row["region"],
            sandbox=row["sandbox"],
            payment_execution=row["payment_execution"],
            mws_auth_token_set=True,
            updated_at=row["updated_at"],
        )


async def load_settings(ctx: Kontor, business: Business) -> MerchantSettings:
    row = await ctx.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM amazon_pay_settings WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if row is None:
        raise Conflict(
            "amazon_pay_not_configured",
            f"business code {business.code} has no Amazon Pay settings; PUT .../amazon-pay/settings first",
        )
    return MerchantSettings(row)


async def get_settings(ctx: Kontor, business: Business) -> AmazonPaySettingsOut:
    try:
        return (await load_settings(ctx, business)).out
    except Conflict as missing:  # reading what does not exist is a 404; using it (an order) is the conflict
        raise NotFound(missing.code, missing.detail) from None


async def put_settings(ctx: Kontor, business: Business, spec: AmazonPaySettingsIn) -> AmazonPaySettingsOut:
    """Create or replace the settings; the token may be left out to keep the stored one."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval(
            "SELECT mws_auth_token FROM amazon_pay_settings WHERE merchant_id = $1 AND business = $2 FOR UPDATE",
            business.merchant_id,
            business.code,
        )
        token = spec.mws_auth_token or stored
        if token is None:
            raise Unprocessable(
                "mws_auth_token_required",
                "the first settings need the merchant's MWS auth token",
                [FieldError("mws_auth_token", "required when no token is stored yet")],
            )
        row = await conn.fetchrow(
            "INSERT INTO amazon_pay_settings (merchant_id, business, seller_id, mws_auth_token, region, sandbox, "
            "payment_execution) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (merchant_id, business) DO UPDATE SET seller_id = excluded.seller_id, "
            "mws_auth_token = excluded.mws_auth_token, region = excluded.region, sandbox = excluded.sandbox, "
            f"payment_execution = excluded.payment_execution, updated_at = now() RETURNING {_COLUMNS}",
            business.merchant_id,
            business.code,
            spec.seller_id,
            token,
            spec.region,
            spec.sandbox,
            spec.payment_execution,
        )
    assert row is not None
    return MerchantSettings(row).out
