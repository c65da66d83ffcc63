"""Amazon Pay settings per business code: how Kontor reaches the merchant's Amazon Pay account (v2) and how
orders are paid (one-step or two-step).

Two ways to connect (developer.amazon.com/docs/amazon-pay-registration, delegated-authorization.html):
- **keys**: the merchant creates API keys for Kontor in Integration Central and gives the public key id and the
  private key (PEM, as downloaded: PKCS#8 or PKCS#1, RSA of at least 2048 bits, not password-protected);
- **delegated**: the merchant authorized Kontor (a solution provider) and gives the MWS auth token; Kontor
  exchanges it once for a v2 authorization token and signs with its own provider key.
A PUT is proven by one signed call to Amazon before anything is stored (a listing of settlement reports, which
Kontor needs anyway); a wrong key or token is a 422 naming the field. The private key and the token are sealed
with AES-GCM before they reach the database (ledger.secrets), never returned and never logged. An Amazon merchant
account belongs to one business code of one merchant (`amazon_pay_accounts`): IPNs name only the account, so a
second claim is refused (409), never shared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable
from ledger.secrets import SealedColumn
from payments.amazon.client import AmazonPayError, Credentials
from payments.refusals import gateway_unavailable
from payments.runtime import Payments, ProviderKey
from payments.schemas import AmazonPaySettingsIn, AmazonPaySettingsOut

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "AUTH_TOKEN",
    "KEY_BITS_MIN",
    "PRIVATE_KEY",
    "SETTLEMENT_REPORT",
    "MerchantSettings",
    "get_settings",
    "load_settings",
    "put_settings",
    "sealed_context",
]

log = logging.getLogger("kontor.amazon_pay")
KEY_BITS_MIN = 2048
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
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM amazon_pay_settings WHERE merchant_id = $1 AND business = $2"
        + (" FOR UPDATE" if lock else ""),
        business.merchant_id,
        business.code,
    )


async def load_settings(ctx: Kontor, rt: Payments, business: Business) -> MerchantSettings:
    """The settings with usable credentials; 409 when none are set or they are Checkout v1's."""
    row = await _row(ctx.pool, business)
    if row is None:
        raise Conflict(
            "amazon_pay_not_configured",
            f"business code {business.code} has no Amazon Pay settings; PUT .../amazon-pay/settings first",
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
    provider = _provider(rt)
    token = ctx.secrets.open(row["auth_token_sealed"], sealed_context(AUTH_TOKEN, merchant, code)).decode()
    return Credentials(
        row["amazon_merchant_id"],
        provider.public_key_id,
        provider.private_key,
        row["region"],
        row["sandbox"],
        auth_token=token,
    )


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
        raise NotFound("amazon_pay_not_configured", f"business code {business.code} has no Amazon Pay settings")
    return _out(row)


def _private_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA key of a PEM as Integration Central downloads it; 422 naming `private_key` otherwise."""
    text = pem.replace("\r\n", "\n").strip() + "\n"
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise _invalid("private_key", "the key is protected by a password: export it without one") from None
    except (ValueError, UnicodeError):
        raise _invalid("private_key", "not a PEM private key (-----BEGIN PRIVATE KEY----- ...)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid("private_key", "Amazon Pay keys are RSA keys")
    if key.key_size < KEY_BITS_MIN:
        raise _invalid("private_key", f"the key has {key.key_size} bits; Amazon Pay keys have at least {KEY_BITS_MIN}")
    return key


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable("amazon_pay_credentials_invalid", f"{field}: {message}", [FieldError(field, message)])


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
        raise _invalid("mws_auth_token", "give either the keys (public_key_id, private_key) or an MWS auth token")
    stored = await _row(ctx.pool, business)
    await _claim(ctx.pool, business, spec.amazon_merchant_id, dry_run=True)
    plan = await _plan(ctx, rt, business, spec, stored)
    await _prove(rt, plan, since=ctx.clock() - timedelta(hours=1))
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
        await _claim(conn, business, spec.amazon_merchant_id, dry_run=False)
        row = await conn.fetchrow(
            "INSERT INTO amazon_pay_settings (merchant_id, business, amazon_merchant_id, store_id, access, "
            "public_key_id, private_key_sealed, auth_token_sealed, region, sandbox, payment_execution, verified_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now()) ON CONFLICT (merchant_id, business) DO UPDATE "
            "SET amazon_merchant_id = excluded.amazon_merchant_id, store_id = excluded.store_id, "
            "access = excluded.access, public_key_id = excluded.public_key_id, "
            "private_key_sealed = excluded.private_key_sealed, auth_token_sealed = excluded.auth_token_sealed, "
            "legacy_mws_auth_token = NULL, region = excluded.region, sandbox = excluded.sandbox, "
            f"payment_execution = excluded.payment_execution, verified_at = now(), updated_at = now() RETURNING {_COLUMNS}",
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
            await conn.execute(
                "DELETE FROM amazon_pay_accounts WHERE amazon_merchant_id = $1 AND merchant_id = $2 AND business = $3",
                previous["amazon_merchant_id"],
                merchant,
                code,
            )
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
        raise _invalid("public_key_id", "give the public key id and private key from Integration Central")
    prefix = spec.public_key_id.split("-", 1)[0]
    if prefix in ("SANDBOX", "LIVE") and (prefix == "SANDBOX") != spec.sandbox:
        raise _invalid("sandbox", f"the public key id is a {prefix.lower()} key; set sandbox to {prefix == 'SANDBOX'}")
    if spec.private_key is not None:
        pem = spec.private_key.replace("\r\n", "\n").strip() + "\n"
        key = _private_key(pem)
        return _Plan("keys", _keys(spec, spec.public_key_id, key), pem.encode(), None)
    if access != "keys" or stored is None:
        raise _invalid("private_key", "required with the first keys")
    creds = _credentials(ctx, rt, business, stored)
    return _Plan("keys", _keys(spec, spec.public_key_id, creds.private_key), None, None)


def _keys(spec: AmazonPaySettingsIn, public_key_id: str, key: rsa.RSAPrivateKey) -> Credentials:
    return Credentials(spec.amazon_merchant_id, public_key_id, key, spec.region, spec.sandbox)


async def _delegated_plan(
    ctx: Kontor, rt: Payments, business: Business, spec: AmazonPaySettingsIn, stored: asyncpg.Record | None
) -> _Plan:
    provider = _provider(rt)
    mws_token = spec.mws_auth_token or (stored["legacy_mws_auth_token"] if stored is not None else None)
    if mws_token is None:
        if stored is None or stored["access"] != "delegated":
            raise _invalid("mws_auth_token", "required to connect through Kontor as solution provider")
        creds = _credentials(ctx, rt, business, stored)
        return _Plan("delegated", _with(spec, creds.auth_token, provider), None, None)
    try:
        token = await rt.gateway.exchange_auth_token(_with(spec, None, provider), spec.amazon_merchant_id, mws_token)
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        raise _invalid(
            "mws_auth_token", f"Amazon did not exchange the token ({exc.reason_code}: {exc.message})"
        ) from exc
    return _Plan("delegated", _with(spec, token, provider), None, token)


def _with(spec: AmazonPaySettingsIn, token: str | None, provider: ProviderKey) -> Credentials:
    return Credentials(
        spec.amazon_merchant_id,
        provider.public_key_id,
        provider.private_key,
        spec.region,
        spec.sandbox,
        auth_token=token,
    )


_FIELD_OF_REASON = {
    "InvalidRequestSignature": ("private_key", "Amazon could not verify Kontor's signature: the private key does not "
                                "belong to this public key id, or the key id is unknown to Amazon"),
    "UnauthorizedAccess": ("public_key_id", "Amazon refused this key for this merchant (check the merchant id, "
                           "region and sandbox/live)"),
    "InvalidAuthorizationToken": ("mws_auth_token", "Amazon refused the delegated authorization"),
}  # fmt: skip


async def _prove(rt: Payments, plan: _Plan, *, since: datetime) -> None:
    """One signed call (a listing of recent settlement reports) that Amazon must accept."""
    try:
        await rt.gateway.list_reports(plan.credentials, report_types=[SETTLEMENT_REPORT], created_since=since)
    except AmazonPayError as exc:
        if not exc.reachable:
            raise gateway_unavailable(exc) from exc
        field, why = _FIELD_OF_REASON.get(exc.reason_code, ("amazon_merchant_id", "Amazon refused the credentials"))
        if plan.access == "delegated" and field == "private_key":
            field = "mws_auth_token"
        raise _invalid(field, f"{why} ({exc.reason_code})") from exc


async def _claim(
    conn: Connection | asyncpg.Pool, business: Business, amazon_merchant_id: str, *, dry_run: bool
) -> None:
    """This business code owns the Amazon merchant account from now on; 409 when someone else does."""
    if not dry_run:
        await conn.execute(
            "INSERT INTO amazon_pay_accounts (amazon_merchant_id, merchant_id, business) VALUES ($1, $2, $3) "
            "ON CONFLICT (amazon_merchant_id) DO NOTHING",
            amazon_merchant_id,
            business.merchant_id,
            business.code,
        )
    owner = await conn.fetchrow(
        "SELECT merchant_id, business FROM amazon_pay_accounts WHERE amazon_merchant_id = $1", amazon_merchant_id
    )
    if owner is None or (owner["merchant_id"], owner["business"]) == (business.merchant_id, business.code):
        return
    if owner["merchant_id"] != business.merchant_id:
        raise Conflict(
            "amazon_merchant_taken",
            f"Amazon merchant {amazon_merchant_id} is connected to another Kontor merchant; an Amazon Pay account "
            "belongs to one merchant (ask Kontor's operator if it is yours)",
            [FieldError("amazon_merchant_id", "connected elsewhere")],
        )
    raise Conflict(
        "amazon_merchant_in_use",
        f"Amazon merchant {amazon_merchant_id} is connected to business code {owner['business']}; each business "
        "code (legal entity) has its own Amazon Pay account",
        [FieldError("amazon_merchant_id", f"used by business code {owner['business']}")],
    )
