"""The dunning policy of a business code, and the base-rate table default interest is computed from.

Levels follow the reference product: 1 payment reminder (free: it is what puts the customer in
default), 2 first dunning, 3 second, 4 final; fewer levels may be configured. Level 1 is due `days`
after the oldest overdue item's due date, every later level `days` after the previous notice. Each
notice names a pay-by date `payment_term_days` ahead (keep it shorter than the gap to the next level:
payments take days to arrive). The customer is in default from the day after the first reminder's
pay-by date; interest runs from then.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import FieldError, Unprocessable
from ledger.money import AmountError, format_amount, parse_amount

__all__ = [
    "BaseRateIn",
    "BaseRateOut",
    "Level",
    "LevelIn",
    "Policy",
    "PolicyIn",
    "PolicyOut",
    "base_rates",
    "get_policy",
    "list_base_rates",
    "load_policy",
    "put_base_rate",
    "put_policy",
]

AmountText = Annotated[str, Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$", examples=["1.50"])]
PointsText = Annotated[str, Meta(pattern=r"^[0-9]{1,2}(\.[0-9]{1,3})?$", examples=["5"])]


class LevelIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    days: Annotated[int, Meta(ge=0, le=365)]  # level 1: days overdue; later: days after the previous notice
    payment_term_days: Annotated[int, Meta(ge=1, le=90)] = 14
    fee: AmountText = "0.00"  # no VAT


class PolicyIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    threshold: AmountText = "0.00"  # overdue principal below it is not dunned (written off after write_off_days)
    levels: Annotated[list[LevelIn], Meta(min_length=1, max_length=4)]
    interest: bool = True
    consumer_interest_points: PointsText = "5"
    business_interest_points: PointsText = "9"
    business_flat_fee: AmountText = "40.00"  # §288 (5) BGB, once per claim in default
    after_final: Literal["collection", "write_off"] = "collection"
    after_final_days: Annotated[int, Meta(ge=0, le=365)] = 14
    write_off_days: Annotated[int, Meta(ge=1, le=3650)] = 60  # below the threshold, or with dunning off
    underpayment_threshold: AmountText = "0.00"  # a remainder up to this is written off at once


class LevelOut(Struct, kw_only=True):
    level: int
    days: int
    payment_term_days: int
    fee: str


class PolicyOut(Struct, kw_only=True):
    enabled: bool
    currency: str
    threshold: str
    levels: list[LevelOut]
    interest: bool
    consumer_interest_points: str
    business_interest_points: str
    business_flat_fee: str
    after_final: str
    after_final_days: int
    write_off_days: int
    underpayment_threshold: str
    updated_at: datetime | None


class Level(Struct, frozen=True, kw_only=True):
    days: int
    payment_term_days: int
    fee_minor: int


class Policy(Struct, frozen=True, kw_only=True):
    """The policy in minor units, as stored (and as the runs use it)."""

    enabled: bool
    threshold_minor: int
    levels: list[Level]
    interest: bool
    consumer_points: Decimal
    business_points: Decimal
    flat_fee_minor: int
    after_final: str
    after_final_days: int
    write_off_days: int
    underpayment_minor: int

    @classmethod
    def default(cls) -> Policy:
        """Dunning off: overdue amounts are written off after 60 days (the reference product's default)."""
        return cls(
            enabled=False,
            threshold_minor=0,
            levels=[Level(days=1, payment_term_days=14, fee_minor=0)],
            interest=False,
            consumer_points=Decimal(5),
            business_points=Decimal(9),
            flat_fee_minor=0,
            after_final="write_off",
            after_final_days=14,
            write_off_days=60,
            underpayment_minor=0,
        )


def _to_policy(spec: PolicyIn, currency: str) -> Policy:
    errors = []

    def amount(text: str, field: str) -> int:
        try:
            return parse_amount(text, currency, allow_zero=True)
        except AmountError as exc:
            errors.append(FieldError(field, str(exc)))
            return 0

    levels = [
        Level(days=lv.days, payment_term_days=lv.payment_term_days, fee_minor=amount(lv.fee, f"levels[{i}].fee"))
        for i, lv in enumerate(spec.levels)
    ]
    if levels[0].fee_minor:
        errors.append(FieldError("levels[0].fee", "the first reminder puts the customer in default and is free"))
    if levels[0].days < 1:
        errors.append(FieldError("levels[0].days", "the first reminder needs at least one day overdue"))
    for i, lv in enumerate(levels[1:], start=1):
        if lv.days < 1:
            errors.append(FieldError(f"levels[{i}].days", "at least one day after the previous notice"))
    policy = Policy(
        enabled=spec.enabled,
        threshold_minor=amount(spec.threshold, "threshold"),
        levels=levels,
        interest=spec.interest,
        consumer_points=Decimal(spec.consumer_interest_points),
        business_points=Decimal(spec.business_interest_points),
        flat_fee_minor=amount(spec.business_flat_fee, "business_flat_fee"),
        after_final=spec.after_final,
        after_final_days=spec.after_final_days,
        write_off_days=spec.write_off_days,
        underpayment_minor=amount(spec.underpayment_threshold, "underpayment_threshold"),
    )
    if errors:
        raise Unprocessable("policy_invalid", "the dunning policy is invalid", errors)
    return policy


def _out(policy: Policy, currency: str, updated_at: datetime | None) -> PolicyOut:
    return PolicyOut(
        enabled=policy.enabled,
        currency=currency,
        threshold=format_amount(policy.threshold_minor, currency),
        levels=[
            LevelOut(
                level=i,
                days=lv.days,
                payment_term_days=lv.payment_term_days,
                fee=format_amount(lv.fee_minor, currency),
            )
            for i, lv in enumerate(policy.levels, start=1)
        ],
        interest=policy.interest,
        consumer_interest_points=format(policy.consumer_points.normalize(), "f"),
        business_interest_points=format(policy.business_points.normalize(), "f"),
        business_flat_fee=format_amount(policy.flat_fee_minor, currency),
        after_final=policy.after_final,
        after_final_days=policy.after_final_days,
        write_off_days=policy.write_off_days,
        underpayment_threshold=format_amount(policy.underpayment_minor, currency),
        updated_at=updated_at,
    )


async def load_policy(ctx: Kontor, business: Business) -> tuple[Policy, datetime | None]:
    row = await ctx.pool.fetchrow(
        "SELECT policy, updated_at FROM dunning_policies WHERE merchant_id = $1 AND business = $2",
        business.merchant_id,
        business.code,
    )
    if row is None:
        return Policy.default(), None
    return msgspec.convert(row["policy"], Policy, strict=False), row["updated_at"]


async def get_policy(ctx: Kontor, business: Business) -> PolicyOut:
    policy, updated_at = await load_policy(ctx, business)
    return _out(policy, business.currency, updated_at)


async def put_policy(ctx: Kontor, business: Business, spec: PolicyIn) -> PolicyOut:
    policy = _to_policy(spec, business.currency)
    updated_at = await ctx.pool.fetchval(
        "INSERT INTO dunning_policies (merchant_id, business, policy) VALUES ($1, $2, $3) "
        "ON CONFLICT (merchant_id, business) DO UPDATE SET policy = excluded.policy, updated_at = now() "
        "RETURNING updated_at",
        business.merchant_id,
        business.code,
        msgspec.to_builtins(policy),
    )
    return _out(policy, business.currency, updated_at)


# --- base rates --------------------------------------------------------------------------------------------
class BaseRateIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    rate: Annotated[str, Meta(pattern=r"^-?[0-9]{1,2}(\.[0-9]{1,3})?$", examples=["1.27"])]


class BaseRateOut(Struct, kw_only=True):
    valid_from: date
    rate: str


async def base_rates(ctx: Kontor) -> list[tuple[date, Decimal]]:
    rows = await ctx.pool.fetch("SELECT valid_from, rate FROM base_rates ORDER BY valid_from")
    return [(r["valid_from"], r["rate"]) for r in rows]


async def list_base_rates(ctx: Kontor) -> list[BaseRateOut]:
    return [BaseRateOut(valid_from=d, rate=format(r.normalize(), "f")) for d, r in await base_rates(ctx)]


async def put_base_rate(ctx: Kontor, valid_from: date, spec: BaseRateIn) -> BaseRateOut:
    if valid_from.day != 1:
        raise Unprocessable(
            "base_rate_date_invalid", "base rates change on the first day of a month (1 January, 1 July)"
        )
    if not -10 <= Decimal(spec.rate) <= 30:
        raise Unprocessable(
            "base_rate_invalid",
            f"a base rate of {spec.rate} % is outside -10 to 30 %",
            [FieldError("rate", "must be between -10 and 30 (percent)")],
        )
    await ctx.pool.execute(
        "INSERT INTO base_rates (valid_from, rate) VALUES ($1, $2) "
        "ON CONFLICT (valid_from) DO UPDATE SET rate = excluded.rate, updated_at = now()",
        valid_from,
        Decimal(spec.rate),
    )
    return BaseRateOut(valid_from=valid_from, rate=format(Decimal(spec.rate).normalize(), "f"))
