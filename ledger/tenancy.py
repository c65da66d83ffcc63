"""Merchants, business codes, API keys and accounts: onboarding and the chart of accounts.

Why one module (over 400 lines): these are the tenant's master data, read through this one module by the
journal, reports, exports and routes. Each function takes the `Kontor` context (or a connection inside a caller's
transaction) and the merchant id from the authenticated key; no function here accepts a merchant id from a request
body. The accounts section (account index, chart) is the seam to split next, with its callers in the posting path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg
import pycountry

from ledger.charts import chart_template, default_vat_rates
from ledger.context import AccountIndex, KeyRecord, Kontor
from ledger.domain import Account, Business
from ledger.errors import Conflict, FieldError, NotFound, Unauthorized, Unprocessable, present
from ledger.money import is_known_currency
from ledger.schemas import (
    AccountCreate,
    AccountOut,
    AccountUpdate,
    ApiKeyCreated,
    ApiKeyOut,
    BusinessCreate,
    BusinessOut,
    MerchantCreated,
)
from ledger.textsafe import parse_ascii_int

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = [
    "Principal",
    "account_index",
    "accounts_with",
    "add_business",
    "authenticate",
    "create_account",
    "create_merchant",
    "describe_business",
    "get_account",
    "get_business",
    "is_country",
    "issue_key",
    "list_accounts",
    "list_businesses",
    "list_keys",
    "render_account",
    "revoke_key",
    "update_account",
]

KEY_PREFIX = "kontor"
_BUSINESS_COLUMNS = "business, country, currency, chart, vat_rates, closed_through, created_at"
_ACCOUNT_COLUMNS = "account_id, number, name, type, role, vat_rate, alt_number, allow_negative, customer_ledger"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a merchant's API key, or the operator (merchant_id None)."""

    merchant_id: int | None
    key_id: int | None
    role: str
    name: str = ""  # the key's name (api_keys.name), shown in the audit trail


# --- business codes -----------------------------------------------------------------------------------
def _business(merchant_id: int, row: asyncpg.Record) -> Business:
    return Business(
        merchant_id=merchant_id,
        code=row["business"],
        country=row["country"],
        currency=row["currency"],
        chart=row["chart"],
        vat_rates=tuple(row["vat_rates"]),
    )


def _business_out(row: asyncpg.Record) -> BusinessOut:
    return BusinessOut(
        code=row["business"],
        country=row["country"],
        currency=row["currency"],
        chart=row["chart"],
        vat_rates=[format(r.normalize(), "f") for r in row["vat_rates"]],
        closed_through=row["closed_through"],
        created_at=row["created_at"],
    )


async def get_business(ctx: Kontor, merchant_id: int, code: int) -> Business:
    """The merchant's business code, or 404 (also for another merchant's code: nothing leaks)."""
    cached = ctx.businesses.get((merchant_id, code))
    if cached is not None:
        return cached
    row = await ctx.pool.fetchrow(
        f"SELECT {_BUSINESS_COLUMNS} FROM businesses WHERE merchant_id = $1 AND business = $2", merchant_id, code
    )
    if row is None:
        raise NotFound("business_not_found", f"business code {code} not found")
    business = _business(merchant_id, row)
    ctx.businesses[(merchant_id, code)] = business
    return business


def _vat_rates(spec: BusinessCreate) -> tuple[Decimal, ...]:
    if spec.vat_rates is None:
        return default_vat_rates(spec.country)
    rates = tuple(Decimal(r) for r in spec.vat_rates)
    if any(r <= 0 or r >= 100 for r in rates) or len(set(rates)) != len(rates):
        raise Unprocessable(
            "vat_rates_invalid",
            "VAT rates must be distinct and between 0 and 100",
            [FieldError("vat_rates", "distinct rates above 0 and below 100")],
        )
    return rates


def is_country(code: str) -> bool:
    """True for an officially assigned ISO 3166-1 alpha-2 code ("DE"; not "XX", "EU" or "XK"), per pycountry's
    copy of the ISO 3166 tables: the country decides VAT rates, the G/L report's country column, the locale."""
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None


async def _insert_business(conn: Connection, merchant_id: int, spec: BusinessCreate, path: str) -> asyncpg.Record:
    if not is_country(spec.country):
        raise Unprocessable(
            "country_unknown",
            f"{spec.country} is not an ISO 3166-1 alpha-2 country code",
            [FieldError(f"{path}country", "unknown ISO 3166-1 alpha-2 country code")],
        )
    if not is_known_currency(spec.currency):
        raise Unprocessable(
            "currency_unknown",
            f"{spec.currency} is not an ISO 4217 currency",
            [FieldError(f"{path}currency", "unknown ISO 4217 currency")],
        )
    rates = _vat_rates(spec)
    try:
        row = await conn.fetchrow(
            f"INSERT INTO businesses (merchant_id, business, country, currency, chart, vat_rates) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_BUSINESS_COLUMNS}",
            merchant_id,
            spec.code,
            spec.country,
            spec.currency,
            spec.chart,
            list(rates),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("business_exists", f"business code {spec.code} already exists") from None
    template = chart_template(spec.chart, rates)
    await conn.executemany(
        "INSERT INTO accounts (merchant_id, business, number, name, type, role, vat_rate, customer_ledger) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [(merchant_id, spec.code, a.number, a.name, a.type, a.role, a.vat_rate, a.customer_ledger) for a in template],
    )
    return present(row, "INSERT ... RETURNING gives the row")


async def add_business(ctx: Kontor, merchant_id: int, spec: BusinessCreate) -> BusinessOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        return _business_out(await _insert_business(conn, merchant_id, spec, ""))


async def describe_business(ctx: Kontor, business: Business) -> BusinessOut:
    row = await ctx.reports_pool.fetchrow(
        f"SELECT {_BUSINESS_COLUMNS} FROM businesses WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    row = present(row, "business codes are never deleted")
    return _business_out(row)


async def list_businesses(ctx: Kontor, merchant_id: int) -> list[BusinessOut]:
    rows = await ctx.reports_pool.fetch(
        f"SELECT {_BUSINESS_COLUMNS} FROM businesses WHERE merchant_id = $1 ORDER BY business", merchant_id
    )
    return [_business_out(r) for r in rows]


# --- merchants and keys -------------------------------------------------------------------------------
async def create_merchant(ctx: Kontor, name: str, businesses: list[BusinessCreate]) -> MerchantCreated:
    """Create a merchant, its business codes with their charts, and its first admin key."""
    codes = [b.code for b in businesses]
    if len(set(codes)) != len(codes):
        raise Unprocessable(
            "business_duplicate",
            "business codes must be distinct",
            [FieldError("businesses", "duplicate business code")],
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        merchant_id = await conn.fetchval("INSERT INTO merchants (name) VALUES ($1) RETURNING merchant_id", name)
        rows = [
            await _insert_business(conn, merchant_id, spec, f"businesses[{i}].") for i, spec in enumerate(businesses)
        ]
        key = await issue_key(conn, merchant_id, "initial admin key", "admin")
    return MerchantCreated(merchant_id=merchant_id, name=name, businesses=[_business_out(r) for r in rows], api_key=key)


def _key_out(row: asyncpg.Record) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=row["key_id"],
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


async def issue_key(conn: Connection | asyncpg.Pool, merchant_id: int, name: str, role: str) -> ApiKeyCreated:
    """A new random key (256 bits); only its SHA-256 is stored, the key itself is returned once."""
    secret = secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO api_keys (merchant_id, secret_sha256, role, name) VALUES ($1, $2, $3, $4) "
        "RETURNING key_id, name, role, created_at, revoked_at",
        merchant_id,
        hashlib.sha256(secret.encode()).digest(),
        role,
        name,
    )
    row = present(row, "INSERT ... RETURNING gives the row")
    out = _key_out(row)
    return ApiKeyCreated(
        key_id=out.key_id,
        name=out.name,
        role=out.role,
        created_at=out.created_at,
        key=f"{KEY_PREFIX}_{merchant_id}_{out.key_id}_{secret}",
    )


async def list_keys(ctx: Kontor, merchant_id: int) -> list[ApiKeyOut]:
    rows = await ctx.pool.fetch(
        "SELECT key_id, name, role, created_at, revoked_at FROM api_keys WHERE merchant_id = $1 ORDER BY key_id",
        merchant_id,
    )
    return [_key_out(r) for r in rows]


async def revoke_key(ctx: Kontor, merchant_id: int, key_id: int) -> ApiKeyOut:
    row = await ctx.pool.fetchrow(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE merchant_id = $1 AND key_id = $2 "
        "RETURNING key_id, name, role, created_at, revoked_at",
        merchant_id,
        key_id,
    )
    if row is None:
        raise NotFound("api_key_not_found", f"API key {key_id} not found")
    ctx.keys.pop((merchant_id, key_id), None)
    return _key_out(row)


def _bad_key() -> Unauthorized:
    return Unauthorized("api_key_invalid", "the API key is missing, malformed, unknown or revoked")


async def authenticate(ctx: Kontor, token: str) -> Principal:
    """Resolve `kontor_<merchant>_<key id>_<secret>` (or the operator key) to a principal, or 401."""
    operator_key = ctx.settings.operator_key
    if operator_key and hmac.compare_digest(token.encode(), operator_key.encode()):
        return Principal(merchant_id=None, key_id=None, role="operator")
    parts = token.split("_", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX:
        raise _bad_key()
    merchant_id, key_id, secret = parse_ascii_int(parts[1]), parse_ascii_int(parts[2]), parts[3]
    if merchant_id is None or key_id is None or merchant_id > 2**62 or key_id > 2**62:
        raise _bad_key()
    record = ctx.keys.get((merchant_id, key_id))
    if record is None or not ctx.key_is_fresh(record):
        row = await ctx.pool.fetchrow(
            "SELECT secret_sha256, role, name, revoked_at IS NOT NULL AS revoked FROM api_keys "
            "WHERE merchant_id = $1 AND key_id = $2",
            merchant_id,
            key_id,
        )
        if row is None:
            raise _bad_key()
        record = KeyRecord(
            secret_sha256=row["secret_sha256"],
            role=row["role"],
            name=row["name"],
            revoked=row["revoked"],
            fetched_at=time.monotonic(),
        )
        ctx.keys[(merchant_id, key_id)] = record
    digest = hashlib.sha256(secret.encode()).digest()
    if not hmac.compare_digest(digest, record.secret_sha256) or record.revoked:
        raise _bad_key()
    return Principal(merchant_id=merchant_id, key_id=key_id, role=record.role, name=record.name)


# --- accounts -----------------------------------------------------------------------------------------
def _account(row: asyncpg.Record) -> Account:
    return Account(
        account_id=row["account_id"],
        number=row["number"],
        name=row["name"],
        type=row["type"],
        role=row["role"],
        vat_rate=row["vat_rate"],
        alt_number=row["alt_number"],
        allow_negative=row["allow_negative"],
        customer_ledger=row["customer_ledger"],
    )


def render_account(account: Account) -> AccountOut:
    return AccountOut(
        number=account.number,
        name=account.name,
        type=account.type,
        normal_balance="CREDIT" if account.credit_normal else "DEBIT",
        role=account.role,
        vat_rate=None if account.vat_rate is None else format(account.vat_rate.normalize(), "f"),
        alt_number=account.alt_number,
        allow_negative=account.allow_negative,
        customer_ledger=account.customer_ledger,
    )


async def account_index(ctx: Kontor, business: Business, *, refresh: bool = False) -> AccountIndex:
    """All accounts of a business code (cached; accounts are never deleted, so a miss means refresh)."""
    key = (business.merchant_id, business.code)
    cached = ctx.accounts.get(key)
    if cached is not None and not refresh:
        return cached
    rows = await ctx.pool.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE merchant_id = $1 AND business = $2 ORDER BY number",
        business.merchant_id,
        business.code,
    )
    accounts = [_account(r) for r in rows]
    index = AccountIndex(
        by_number={a.number: a for a in accounts},
        by_id={a.account_id: a for a in accounts},
        by_role={a.role: a for a in accounts if a.role},
    )
    ctx.accounts[key] = index
    return index


async def accounts_with(
    ctx: Kontor, business: Business, *, numbers: Iterable[str] = (), ids: Iterable[int] = ()
) -> AccountIndex:
    """The account index, read again once when it lacks one of the account `numbers` or `ids` (an account
    created since it was cached, by this or another process). Whatever is still missing is the caller's to
    refuse: the accounts do not exist."""
    index = await account_index(ctx, business)
    if any(n not in index.by_number for n in numbers) or any(i not in index.by_id for i in ids):
        index = await account_index(ctx, business, refresh=True)
    return index


async def get_account(ctx: Kontor, business: Business, number: str) -> Account:
    """The account with this number; 404 `account_not_found` when the business code has none."""
    account = (await accounts_with(ctx, business, numbers=[number])).by_number.get(number)
    if account is None:
        raise NotFound("account_not_found", f"no account {number} in business {business.code}")
    return account


async def list_accounts(ctx: Kontor, business: Business, role: str | None) -> list[AccountOut]:
    index = await account_index(ctx, business, refresh=True)
    return [render_account(a) for a in index.by_number.values() if role is None or a.role == role]


async def create_account(ctx: Kontor, business: Business, spec: AccountCreate) -> AccountOut:
    vat_rate = None if spec.vat_rate is None else Decimal(spec.vat_rate)
    try:
        row = await ctx.pool.fetchrow(
            "INSERT INTO accounts (merchant_id, business, number, name, type, role, vat_rate, alt_number, "
            f"allow_negative, customer_ledger) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            f"RETURNING {_ACCOUNT_COLUMNS}",
            business.merchant_id,
            business.code,
            spec.number,
            spec.name,
            spec.type,
            spec.role,
            vat_rate,
            spec.alt_number,
            spec.allow_negative,
            spec.customer_ledger,
        )
    except asyncpg.UniqueViolationError as exc:
        field_name = "role" if "role" in (exc.constraint_name or "") else "number"
        raise Conflict(
            "account_exists",
            f"an account with this {field_name} already exists",
            [FieldError(field_name, "already used in this business code")],
        ) from None
    row = present(row, "INSERT ... RETURNING gives the row")
    ctx.forget_accounts(business.merchant_id, business.code)
    return render_account(_account(row))


async def update_account(ctx: Kontor, business: Business, number: str, spec: AccountUpdate) -> AccountOut:
    """Rename an account or set the merchant's own G/L number; keys, type and rules stay."""
    row = await ctx.pool.fetchrow(
        "UPDATE accounts SET name = COALESCE($4, name), alt_number = COALESCE($5, alt_number) "
        f"WHERE merchant_id = $1 AND business = $2 AND number = $3 RETURNING {_ACCOUNT_COLUMNS}",
        business.merchant_id,
        business.code,
        number,
        spec.name,
        spec.alt_number,
    )
    if row is None:
        raise NotFound("account_not_found", f"no account {number} in business {business.code}")
    ctx.forget_accounts(business.merchant_id, business.code)
    return render_account(_account(row))
