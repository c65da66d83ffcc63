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
a business code moves to another account only while none of its orders there is open (`_check_move`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound, Unprocessable, invariant
from ledger.secrets import SealedColumn
from payments.amazon.client import AmazonPayError, Credentials, Region
from payments.refusals import gateway_unavailable
from payments.runtime import Payments, ProviderKey
from payments.schemas import AmazonPaySettingsIn, AmazonPaySettingsOut

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "AUTH_TOKEN",
    "KEY_BITS_MIN",
    "PRIVATE_KEY",
    "REGION_CURRENCIES",
    "SETTLEMENT_REPORT",
    "MerchantSettings",
    "get_settings",
    "load_settings",
    "mark_proven",
    "put_settings",
    "region_of",
    "sealed_context",
]

log = logging.getLogger("kontor.amazon_pay")
KEY_BITS_MIN = 2048
PAYOUT_DAYS = 90  # payouts (disbursements) looked at for the account's id when keys are proven
# the currencies Amazon Pay settles in, by region (pay.amazon.com: US; EU and UK; Japan)
REGION_CURRENCIES = {"na": frozenset({"USD"}), "eu": frozenset({"EUR", "GBP"}), "jp": frozenset({"JPY"})}
SETTLEMENT_REPORT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"
# one PEM block of a private key (PKCS#8, PKCS#1, or encrypted: refused below, by its password), nothing around it;
# inside: base64 lines, and the header lines of an encrypted PKCS#1 key
_PEM = re.compile(
    r"-----BEGIN ((?:RSA |ENCRYPTED )?PRIVATE KEY)-----\n(?:[A-Za-z0-9+/=]{1,100}\n|[A-Za-z-]{1,40}: [ -~]{1,200}\n|\n)+"
    r"-----END \1-----\n"
)
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


async def load_settings(ctx: Kontor, rt: Payments, business: Business) -> MerchantSettings:
    """The settings with usable credentials; 409 when none are set or they are Checkout v1's."""
    row = await _row(ctx.pool, business)
    if row is None:
        raise Conflict(
            "amazon_pay_not_configured",
            f"business code {business.code} has no Amazon Pay settings; PUT .../amazon-pay/settings first",
        )
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
        raise NotFound("amazon_pay_settings_not_found", f"business code {business.code} has no Amazon Pay settings")
    return _out(row)


def _private_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA key of a PEM as Integration Central downloads it, exactly one PEM block and nothing around it;
    422 naming `private_key` otherwise."""
    text = pem.replace("\r\n", "\n").strip() + "\n"
    if not _PEM.fullmatch(text):
        raise _invalid(
            "private_key",
            "not one PEM private key (-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----) and nothing else",
        )
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
    spec = msgspec.structs.replace(spec, region=region_of(spec.region, business))
    stored = await _row(ctx.pool, business)
    if stored is not None and stored["amazon_merchant_id"] != spec.amazon_merchant_id:
        await _check_move(ctx.pool, business, stored["amazon_merchant_id"], spec)
    await _claim(ctx.pool, business, spec.amazon_merchant_id, proven=False, dry_run=True)
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
        await _claim(conn, business, spec.amazon_merchant_id, proven=proven, dry_run=False)
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
    return Credentials(spec.amazon_merchant_id, public_key_id, key, _region(spec), spec.sandbox)


def _region(spec: AmazonPaySettingsIn) -> Region:
    """The region put_settings resolved (region_of) before anything else."""
    invariant(spec.region is not None, "the region is resolved before the credentials are built")
    return spec.region or "eu"


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
        _region(spec),
        spec.sandbox,
        auth_token=token,
    )


_FIELDS_OF_REASON = {
    "InvalidRequestSignature": (("public_key_id", "private_key"), "Amazon could not verify Kontor's signature: the "
                                "public key id is unknown to Amazon, or the private key does not belong to it"),
    "UnauthorizedAccess": (("public_key_id", "region", "sandbox"), "Amazon refused this key here: it belongs to "
                           "another region or environment (sandbox/live) than the one named"),
    "InvalidAuthorizationToken": (("mws_auth_token",), "Amazon refused the delegated authorization"),
}  # fmt: skip


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
        raise _refused(plan, exc) from exc
    sellers = {d.seller_id for d in payouts if d.seller_id}
    others = sorted(sellers - {plan.credentials.merchant_id})
    if others:
        raise _invalid(
            "amazon_merchant_id",
            f"these keys belong to Amazon merchant {', '.join(others)} (Amazon pays their account out under that id), "
            f"not {plan.credentials.merchant_id}",
        )
    return bool(sellers)


def _refused(plan: _Plan, exc: AmazonPayError) -> Unprocessable:
    """Amazon refused the credentials: 422 naming the fields that can be wrong."""
    fields, why = _FIELDS_OF_REASON.get(exc.reason_code, (("amazon_merchant_id",), "Amazon refused the credentials"))
    if plan.access == "delegated":
        fields = tuple("mws_auth_token" if f in ("private_key", "public_key_id") else f for f in fields)
        fields = tuple(dict.fromkeys(fields))
    message = f"{why} ({exc.reason_code})"
    return Unprocessable(
        "amazon_pay_credentials_invalid", f"{', '.join(fields)}: {message}", [FieldError(f, message) for f in fields]
    )


async def _claim(
    conn: Connection | asyncpg.Pool, business: Business, amazon_merchant_id: str, *, proven: bool, dry_run: bool
) -> None:
    """This business code owns the Amazon merchant account from now on; 409 when someone else does. A claim whose
    credentials Amazon has not shown to act for the account (`proven_at` NULL) yields to a proven one."""
    owner = await conn.fetchrow(
        "SELECT merchant_id, business, proven_at FROM amazon_pay_accounts WHERE amazon_merchant_id = $1"
        + ("" if dry_run else " FOR UPDATE"),
        amazon_merchant_id,
    )
    mine = owner is not None and (owner["merchant_id"], owner["business"]) == (business.merchant_id, business.code)
    takeover = owner is not None and not mine and owner["proven_at"] is None and proven
    if owner is not None and not mine and not takeover and (not dry_run or owner["proven_at"] is not None):
        _refuse_claim(business, amazon_merchant_id, owner)
    if dry_run:
        return
    await conn.execute(
        "INSERT INTO amazon_pay_accounts (amazon_merchant_id, merchant_id, business, proven_at) "
        "VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END) ON CONFLICT (amazon_merchant_id) DO UPDATE "
        "SET merchant_id = excluded.merchant_id, business = excluded.business, claimed_at = now(), "
        "proven_at = COALESCE(excluded.proven_at, amazon_pay_accounts.proven_at)",
        amazon_merchant_id,
        business.merchant_id,
        business.code,
        proven,
    )
    if takeover:
        log.warning(
            "an unproven claim on an Amazon merchant account was taken over by proven credentials",
            extra={"business": business.code},
        )


def _refuse_claim(business: Business, amazon_merchant_id: str, owner: asyncpg.Record) -> None:
    proof = (
        ""
        if owner["proven_at"] is not None
        else " (not proven yet: credentials Amazon shows to act for this account - delegated access, or keys whose "
        "payouts name it - take it over)"
    )
    if owner["merchant_id"] != business.merchant_id:
        raise Conflict(
            "amazon_merchant_taken",
            f"Amazon merchant {amazon_merchant_id} is connected to another Kontor merchant{proof}; an Amazon Pay "
            "account belongs to one merchant (ask Kontor's operator if it is yours)",
            [FieldError("amazon_merchant_id", "connected elsewhere")],
        )
    raise Conflict(
        "amazon_merchant_in_use",
        f"Amazon merchant {amazon_merchant_id} is connected to business code {owner['business']}{proof}; each "
        "business code (legal entity) has its own Amazon Pay account",
        [FieldError("amazon_merchant_id", f"used by business code {owner['business']}")],
    )


async def mark_proven(ctx: Kontor, business: Business, amazon_merchant_id: str) -> None:
    """Amazon showed that the business code's credentials act for the account (its settlement report fetched with
    them, an IPN of it whose object they read): the claim is proven."""
    await ctx.pool.execute(
        "UPDATE amazon_pay_accounts SET proven_at = now() WHERE amazon_merchant_id = $1 AND merchant_id = $2 "
        "AND business = $3 AND proven_at IS NULL",
        amazon_merchant_id,
        business.merchant_id,
        business.code,
    )


async def _check_move(
    conn: Connection | asyncpg.Pool, business: Business, current: str, spec: AmazonPaySettingsIn
) -> None:
    """Moving a business code to another Amazon account: refused (409) while orders of the current account are
    open, whose captures, refunds and cancellations only that account can carry out; and the new account needs its
    own credentials (a stored key or token acts for the current one)."""
    if spec.private_key is None and spec.mws_auth_token is None:
        raise _invalid(
            "private_key", f"another Amazon merchant account ({spec.amazon_merchant_id}) needs its own credentials"
        )
    open_orders = await conn.fetch(
        "SELECT o.order_ref FROM orders o WHERE o.merchant_id = $1 AND o.business = $2 AND ("
        "  EXISTS (SELECT 1 FROM order_items i WHERE i.merchant_id = o.merchant_id AND i.business = o.business "
        "    AND i.order_ref = o.order_ref AND i.state = 'open') AND o.status NOT IN ('declined', 'cancelled')"
        "  OR o.status IN ('pending', 'authorization_pending')"
        "  OR EXISTS (SELECT 1 FROM amazon_refunds r WHERE r.merchant_id = o.merchant_id AND r.business = o.business "
        "    AND r.order_ref = o.order_ref AND r.state IN ('Requested', 'RefundInitiated'))"
        "  OR EXISTS (SELECT 1 FROM invoice_captures p WHERE p.merchant_id = o.merchant_id AND p.business = o.business "
        "    AND p.order_ref = o.order_ref AND p.state = 'requested')) ORDER BY o.order_ref LIMIT 5",
        business.merchant_id,
        business.code,
    )
    if open_orders:
        names = ", ".join(r["order_ref"] for r in open_orders)
        raise Conflict(
            "amazon_merchant_change_refused",
            f"business code {business.code} has open orders at Amazon merchant {current} ({names}"
            f"{', ...' if len(open_orders) == 5 else ''}): their captures, refunds and cancellations can only go "
            "through that account; invoice or cancel them first",
            [FieldError("amazon_merchant_id", "open orders at the current account")],
        )


def region_of(region: str | None, business: Business) -> str:
    """The Amazon Pay region of the business code: as given, else the one that settles its currency (USD na, EUR
    and GBP eu, JPY jp); 422 naming `region` when a region is given that does not settle one of those currencies,
    or none is given for another currency. (That the account itself is in the region, Amazon says: a key of
    another region's account is refused at the signed call.)"""
    home = next((r for r, currencies in REGION_CURRENCIES.items() if business.currency in currencies), None)
    chosen = region or home
    if chosen is None:
        raise _invalid("region", f"business code {business.code} books {business.currency}; give the region")
    if home is not None and chosen != home:
        raise _invalid(
            "region",
            f"Amazon Pay's {chosen} region does not settle {business.currency}, which business code {business.code} "
            f"books ({business.currency} is settled in the {home} region)",
        )
    return chosen
