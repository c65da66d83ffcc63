"""Amazon Pay settings per business code: how Kontor reaches the merchant's Amazon Pay account (v2) and how
orders are paid (one-step or two-step).

Two ways to connect (developer.amazon.com/docs/amazon-pay-registration, delegated-authorization.html):
- **keys**: the merchant creates API keys for Kontor in Integration Central and gives the public key id and the
  private key (PEM, as downloaded: PKCS#8 or PKCS#1, RSA of at least 2048 bits, not password-protected);
- **delegated**: the merchant authorized Kontor (a solution provider) and gives the MWS auth token; Kontor
  exchanges it once for a v2 authorization token and signs with its own provider key.
A PUT is proven by signed calls to Amazon before anything is stored (a listing of settlement reports, which
Kontor needs anyway); a wrong key or token is a 422 naming the fields. The credentials must act for the merchant
id named: Amazon's API v2 has no call naming the account of a merchant's own keys, so Kontor takes what Amazon
shows - a delegated token is exchanged for that merchant id (Amazon binds it), the keys' payouts name their
`sellerId` (`GET /v2/disbursements`: another id is a 422 naming `amazon_merchant_id`). Keys never paid out leave
the claim unproven until a settlement report fetched with them or an IPN whose object they read shows it
(`mark_proven`). The private key and the token are sealed with AES-GCM before they reach the database
(ledger.secrets), never returned and never logged. An Amazon merchant account belongs to one business code of one
merchant (`amazon_pay_accounts`): IPNs name only the account, so a second claim is refused (409), never shared;
an unproven claim yields to a proven one. The region must settle the business code's currency (`region_of`), and
a business code moves to another account only while none of its orders there is open (`check_move`).

The checks that need neither the database nor Amazon (the key, its environment, the region, what Amazon's
refusals mean) are `payments.settings_checks`; the claims on Amazon merchant accounts are `payments.settings_claims`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, NotFound, invariant
from ledger.secrets import SealedColumn
from payments.amazon.client import AmazonPayError, Credentials, Region
from payments.refusals import gateway_unavailable
from payments.runtime import Payments, ProviderKey
from payments.schemas import AmazonPaySettingsIn, AmazonPaySettingsOut
from payments.settings_checks import (
    KEY_BITS_MIN,
    REGION_CURRENCIES,
    check_environment,
    check_sellers,
    invalid,
    private_key,
    refused,
    region_of,
)
from payments.settings_claims import check_move, claim, mark_proven, release

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "AUTH_TOKEN",
    "KEY_BITS_MIN",
    "PRIVATE_KEY",
    "REGION_CURRENCIES",
    "SETTLEMENT_REPORT",
    "MerchantSettings",
    "amazon_merchant_id",
    "get_settings",
    "load_settings",
    "mark_proven",
    "put_settings",
    "region_of",
    "sealed_context",
]

log = logging.getLogger("kontor.amazon_pay")
PAYOUT_DAYS = 90  # payouts (disbursements) looked at for the account's id when keys are proven
SETTLEMENT_REPORT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"
_COLUMNS = (
    "amazon_merchant_id, store_id, access, public_key_id, private_key_sealed, auth_token_sealed, "
    "legacy_mws_auth_token, region, sandbox, payment_execution, verified_at, updated_at"
)


PRIVATE_KEY = SealedColumn("amazon_pay_settings", "private_key_sealed", ("merchant_id", "business"))
AUTH_TOKEN = SealedColumn("amazon_pay_settings", "auth_token_sealed", ("merchant_id", "business"))


def sealed_context(column: SealedColumn, merchant_id: int, business: int) -> str:
    """The associated data a sealed value of amazon_pay_settings is bound to (its row and column)."""
    return column.context_for({"merchant_id": merchant_id, "business": business})


@dataclass(frozen=True, slots=True)
class MerchantSettings:
    credentials: Credentials
    payment_execution: str
    out: AmazonPaySettingsOut

    @property
    def one_step(self) -> bool:
        return self.payment_execution == "one_step"


def _out(row: asyncpg.Record) -> AmazonPaySettingsOut:
    return AmazonPaySettingsOut(
        amazon_merchant_id=row["amazon_merchant_id"],
        store_id=row["store_id"],
        region=row["region"],
        sandbox=row["sandbox"],
        payment_execution=row["payment_execution"],
        access=row["access"],
        public_key_id=row["public_key_id"],
        private_key_set=row["private_key_sealed"] is not None,
        auth_token_set=row["auth_token_sealed"] is not None,
        upgrade_required=row["access"] == "v1",
        verified_at=row["verified_at"],
        updated_at=row["updated_at"],
    )


async def _row(conn: Connection | asyncpg.Pool, business: Business, *, lock: bool = False) -> asyncpg.Record | None:
    """The settings, with `owned`: whether this business code holds the claim on the Amazon merchant account."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS}, COALESCE((SELECT (a.merchant_id, a.business) = (s.merchant_id, s.business) "
        "  FROM amazon_pay_accounts a WHERE a.amazon_merchant_id = s.amazon_merchant_id), false) AS owned "
        "FROM amazon_pay_settings s WHERE merchant_id = $1 AND business = $2" + (" FOR UPDATE" if lock else ""),
        business.merchant_id,
        business.code,
    )


def _not_configured(business: Business) -> Conflict:
    return Conflict(
        "amazon_pay_not_configured",
        f"business code {business.code} has no Amazon Pay settings; PUT .../amazon-pay/settings first",
    )


async def amazon_merchant_id(ctx: Kontor, business: Business) -> str:
    """The Amazon merchant account the business code's settings name (whatever their access or claim); 409
    `amazon_pay_not_configured` when it has none."""
    found = await ctx.pool.fetchval(
        "SELECT amazon_merchant_id FROM amazon_pay_settings WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if found is None:
        raise _not_configured(business)
    return str(found)


async def load_settings(ctx: Kontor, rt: Payments, business: Business) -> MerchantSettings:
    """The settings with usable credentials; 409 when none are set or they are Checkout v1's."""
    row = await _row(ctx.pool, business)
    if row is None:
        raise _not_configured(business)
    if not row["owned"]:
        raise Conflict(
            "amazon_merchant_taken",
            f"Amazon merchant {row['amazon_merchant_id']} was connected by another business code whose credentials "
            f"Amazon showed to act for it; PUT .../amazon-pay/settings again with this business code's own account",
        )
    if row["access"] == "v1":
        raise Conflict(
            "amazon_pay_upgrade_required",
            f"business code {business.code} still has Checkout v1 (MWS) settings, which Amazon ended on 2026-03-31; "
            "PUT .../amazon-pay/settings with the v2 keys from Integration Central, or the MWS auth token",
        )
    key = (business.merchant_id, business.code, str(row["updated_at"]))
    creds = rt.cached_credentials(key)
    if creds is None:
        creds = _credentials(ctx, rt, business, row)
        rt.cache_credentials(key, creds)
    return MerchantSettings(creds, row["payment_execution"], _out(row))


def _credentials(ctx: Kontor, rt: Payments, business: Business, row: asyncpg.Record) -> Credentials:
    merchant, code = business.merchant_id, business.code
    if row["access"] == "keys":
        pem = ctx.secrets.open(row["private_key_sealed"], sealed_context(PRIVATE_KEY, merchant, code))
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise Conflict("amazon_pay_not_configured", "the stored private key is not an RSA key")
        return Credentials(row["amazon_merchant_id"], row["public_key_id"], key, row["region"], row["sandbox"])
    token = ctx.secrets.open(row["auth_token_sealed"], sealed_context(AUTH_TOKEN, merchant, code)).decode()
    return _delegated(_provider(rt), row["amazon_merchant_id"], row["region"], row["sandbox"], token)


def _delegated(
    provider: ProviderKey, merchant_id: str, region: Region, sandbox: bool, token: str | None
) -> Credentials:
    """Kontor's solution-provider key acting for the merchant through its v2 authorization token."""
    return Credentials(merchant_id, provider.public_key_id, provider.private_key, region, sandbox, auth_token=token)


def _provider(rt: Payments) -> ProviderKey:
    if rt.provider is None:
        raise Conflict(
            "amazon_pay_provider_not_configured",
            "delegated access needs Kontor's solution-provider key (KONTOR_AMAZON_PAY_PROVIDER_PUBLIC_KEY_ID and "
            "KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE); connect with the merchant's own keys instead",
        )
    return rt.provider


async def get_settings(ctx: Kontor, business: Business) -> AmazonPaySettingsOut:
    row = await _row(ctx.pool, business)
    if row is None:
        raise NotFound("amazon_pay_settings_not_found", f"business code {business.code} has no Amazon Pay settings")
    return _out(row)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a PUT will store once Amazon accepted it: the mode, the credentials to prove, what to seal."""

    access: str
    credentials: Credentials
    private_pem: bytes | None  # new key to seal (None: keep the stored one)
    token: str | None  # delegated: the v2 authorization token to seal (None: keep the stored one)


async def put_settings(
    ctx: Kontor, rt: Payments, business: Business, spec: AmazonPaySettingsIn
) -> AmazonPaySettingsOut:
    """Create or replace the settings after one signed call proved them; returns what is stored (no secrets)."""
    if spec.private_key is not None and spec.mws_auth_token is not None:
        raise invalid("mws_auth_token", "give either the keys (public_key_id, private_key) or an MWS auth token")
    spec = msgspec.structs.replace(spec, region=region_of(spec.region, business))
    stored = await _row(ctx.pool, business)
    if stored is not None and stored["amazon_merchant_id"] != spec.amazon_merchant_id:
        await check_move(ctx.pool, business, stored["amazon_merchant_id"], spec)
    await claim(ctx.pool, business, spec.amazon_merchant_id, proven=False, dry_run=True)
    plan = await _plan(ctx, rt, business, spec, stored)
    proven = await _prove(rt, plan, now=ctx.clock())
    merchant, code = business.merchant_id, business.code
    key_sealed = (
        ctx.secrets.seal(plan.private_pem, sealed_context(PRIVATE_KEY, merchant, code))
        if plan.private_pem is not None
        else None
    )
    token_sealed = (
        ctx.secrets.seal(plan.token.encode(), sealed_context(AUTH_TOKEN, merchant, code))
        if plan.token is not None
        else None
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        previous = await _row(conn, business, lock=True)
        if previous is not None and previous["access"] == plan.access:  # kept secrets: the stored ones
            key_sealed = key_sealed or previous["private_key_sealed"]
            token_sealed = token_sealed or previous["auth_token_sealed"]
        await claim(conn, business, spec.amazon_merchant_id, proven=proven, dry_run=False)
        row = await conn.fetchrow(
            "INSERT INTO amazon_pay_settings (merchant_id, business, amazon_merchant_id, store_id, access, "
            "public_key_id, private_key_sealed, auth_token_sealed, region, sandbox, payment_execution, verified_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now()) ON CONFLICT (merchant_id, business) DO UPDATE "
            "SET amazon_merchant_id = excluded.amazon_merchant_id, store_id = excluded.store_id, "
            "access = excluded.access, public_key_id = excluded.public_key_id, "
            "private_key_sealed = excluded.private_key_sealed, auth_token_sealed = excluded.auth_token_sealed, "
            "legacy_mws_auth_token = NULL, region = excluded.region, sandbox = excluded.sandbox, "
            f"payment_execution = excluded.payment_execution, verified_at = now(), updated_at = now() RETURNING {_COLUMNS}, "
            "true AS owned",
            merchant,
            code,
            spec.amazon_merchant_id,
            spec.store_id,
            plan.access,
            plan.credentials.public_key_id if plan.access == "keys" else None,
            key_sealed,
            token_sealed,
            spec.region,
            spec.sandbox,
            spec.payment_execution,
        )
        if previous is not None and previous["amazon_merchant_id"] != spec.amazon_merchant_id:
            await release(conn, business, previous["amazon_merchant_id"])
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    log.info("amazon pay settings stored", extra={"business": code, "access": plan.access})
    return _out(row)


async def _plan(
    ctx: Kontor, rt: Payments, business: Business, spec: AmazonPaySettingsIn, stored: asyncpg.Record | None
) -> _Plan:
    access = stored["access"] if stored is not None else None
    if spec.mws_auth_token is not None or (
        spec.private_key is None and spec.public_key_id is None and access in ("delegated", "v1")
    ):
        return await _delegated_plan(ctx, rt, business, spec, stored)
    if spec.public_key_id is None:
        raise invalid("public_key_id", "give the public key id and private key from Integration Central")
    check_environment(spec.public_key_id, spec.sandbox)
    if spec.private_key is not None:
        key, pem = private_key(spec.private_key)
        return _Plan("keys", _keys(spec, spec.public_key_id, key), pem, None)
    if access != "keys" or stored is None:
        raise invalid("private_key", "required with the first keys")
    creds = _credentials(ctx, rt, business, stored)
    return _Plan("keys", _keys(spec, spec.public_key_id, creds.private_key), None, None)


def _keys(spec: AmazonPaySettingsIn, public_key_id: str, key: rsa.RSAPrivateKey) -> Credentials:
    return Credentials(spec.amazon_merchant_id, public_key_id, key, _region(spec), spec.sandbox)


def _region(spec: AmazonPaySettingsIn) -> Region:
    """The region put_settings resolved (region_of) before anything else."""
    invariant(spec.region is not None, "the region is resolved before the credentials are built")
    return spec.region or "eu"


async def _delegated_plan(
    ctx: Kontor, rt: Payments, business: Business, spec: AmazonPaySettingsIn, stored: asyncpg.Record | None
) -> _Plan:
    provider = _provider(rt)

    def acting(token: str | None) -> Credentials:
        return _delegated(provider, spec.amazon_merchant_id, _region(spec), spec.sandbox, token)

    mws_token = spec.mws_auth_token or (stored["legacy_mws_auth_token"] if stored is not None else None)
    if mws_token is None:
        if stored is None or stored["access"] != "delegated":
            raise invalid("mws_auth_token", "required to connect through Kontor as solution provider")
        creds = _credentials(ctx, rt, business, stored)
        return _Plan("delegated", acting(creds.auth_token), None, None)
    try:
        token = await rt.gateway.exchange_auth_token(acting(None), spec.amazon_merchant_id, mws_token)
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        raise invalid(
            "mws_auth_token", f"Amazon did not exchange the token ({exc.reason_code}: {exc.message})"
        ) from exc
    return _Plan("delegated", acting(token), None, token)


async def _prove(rt: Payments, plan: _Plan, *, now: datetime) -> bool:
    """Signed calls Amazon must accept (a listing of recent settlement reports, which Kontor needs anyway), and
    whether Amazon showed that the credentials act for the named merchant account: a delegated token was exchanged
    for it just now (Amazon binds the token to the merchantId), or the keys' payouts of the last 90 days name it
    (`GET /v2/disbursements`, sellerId). Payouts naming another account are a 422 naming `amazon_merchant_id`."""
    try:
        await rt.gateway.list_reports(
            plan.credentials, report_types=[SETTLEMENT_REPORT], created_since=now - timedelta(hours=1)
        )
        if plan.access == "delegated":
            return plan.token is not None
        payouts = await rt.gateway.list_disbursements(  # the window also tolerates clocks that differ
            plan.credentials, start=now - timedelta(days=PAYOUT_DAYS), end=now + timedelta(days=PAYOUT_DAYS)
        )
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        raise refused(plan.access, exc) from exc
    return check_sellers((d.seller_id for d in payouts), plan.credentials.merchant_id)
