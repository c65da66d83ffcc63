"""Write-offs with VAT correction (§17 (2) no. 1 UStG) and recovery of written-off debts.

A write-off takes the customer's open costs, interest and overdue principal off the receivable. The
principal is split over the VAT rates of its order in proportion to what is invoiced and not credited
(largest remainder), each part's VAT extracted half-up: Dr LOSS_r net + Dr VAT_r tax. Costs, interest
and principal of no known rate go to LOSS0 without VAT. Cr AR (customer) with the total.

A payment that arrives later (an add-payment call, a bank statement line, a capture or settlement
row: every path ends in `ledger.books.run_receivable_hooks`, which runs this module's `recover`) leaves the customer
in credit; the hook then reinstates the written-off debt by that amount: Dr AR / Cr RECOV (costs, interest,
principal net) and Cr VAT_r (the VAT on the recovered principal is due again). Which debt is recovered
follows `dunning.recovery`: costs and interest first, then the order the payment names (§366 (1) BGB), then
the claim due first (§366 (2)), each at its own VAT rates; so every write-off records its principal per claim
(`principal_by_order`). The customer's account is then balanced and the payment has paid the old debt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dunning.items import Bucket
from dunning.recovery import Claim, Recovery, WriteOffLeft, plan_recovery
from ledger.books import Roles, accounts_by_role, book, customer_balance
from ledger.context import Kontor
from ledger.domain import Account, Business, LineDraft, Side
from ledger.money import allocate, format_amount, vat_from_gross
from payments.notify import emit
from payments.store import open_by_rate

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["NO_RATE", "WriteOff", "claim_by_rate", "recover", "write_off"]

NO_RATE = "none"


@dataclass(frozen=True)
class WriteOff:
    write_off_id: int
    entry_id: int
    amount: int


def _rate_text(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _summed(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Amounts per key (a VAT rate text, a claim key) added up over `parts`, keys in the order first seen."""
    out: dict[str, int] = {}
    for part in parts:
        for key, amount in part.items():
            out[key] = out.get(key, 0) + amount
    return out


async def claim_by_rate(conn: Connection, business: Business, bucket: Bucket) -> dict[str, int]:
    """A claim's open gross per VAT rate ("19", "7", ...; "none" without an order), pro rata over its order."""
    weights = await open_by_rate(conn, business, bucket.order_ref) if bucket.order_ref else {}
    weights = {rate: w for rate, w in weights.items() if w > 0}
    if not weights:
        return {NO_RATE: bucket.open} if bucket.open else {}
    rates = sorted(weights, reverse=True)
    parts = allocate(bucket.open, [weights[r] for r in rates])
    return {_rate_text(rate): part for rate, part in zip(rates, parts, strict=True) if part}


async def _claims(conn: Connection, business: Business, buckets: list[Bucket]) -> list[dict[str, Any]]:
    """The write-off's principal per claim, as stored in write_offs.principal_by_order."""
    claims = []
    for bucket in buckets:
        by_rate = await claim_by_rate(conn, business, bucket)
        if by_rate:
            claims.append(
                {"key": bucket.key, "order": bucket.order_ref, "due": bucket.due.isoformat(), "by_rate": by_rate}
            )
    return claims


def _loss_lines(roles: Roles, by_rate: dict[str, int], rest: int, currency: str) -> list[LineDraft]:
    """Dr LOSS_r net and VAT_r tax per rate, Dr LOSS0 for costs, interest and principal of no rate."""
    lines = []
    for rate_text, gross in by_rate.items():
        rate = Decimal(rate_text) if rate_text != NO_RATE else Decimal(0)
        if rate <= 0:
            rest += gross
            continue
        tax = vat_from_gross(gross, rate)
        lines.append(LineDraft(roles.per_rate("LOSS", rate), Side.DEBIT, gross - tax, currency))
        if tax:
            lines.append(LineDraft(roles.per_rate("VAT", rate), Side.DEBIT, tax, currency))
    if rest:
        lines.append(LineDraft(roles("LOSS0"), Side.DEBIT, rest, currency))
    return lines


async def write_off(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    customer: str,
    *,
    costs: int,
    interest: int,
    principal: list[Bucket],
    reason: str,
    on: date,
) -> WriteOff:
    roles = await accounts_by_role(ctx, business)
    claims = await _claims(conn, business, principal)
    by_rate = _summed(claim["by_rate"] for claim in claims)
    total = costs + interest + sum(by_rate.values())
    lines = _loss_lines(roles, by_rate, costs + interest, business.currency)
    lines.append(LineDraft(roles("AR"), Side.CREDIT, total, business.currency, customer))
    entry_id = await book(
        ctx,
        conn,
        business,
        lines,
        on=on,
        description=f"Write-off of customer {customer}'s debt ({reason})",
        reference=customer,
        metadata={"dunning": "write_off", "reason": reason},
    )
    write_off_id = await conn.fetchval(
        "INSERT INTO write_offs (merchant_id, business, customer, written_off_on, reason, costs_minor, interest_minor, "
        "principal_by_rate, entry_id, open_minor, principal_by_order) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11) RETURNING write_off_id",
        business.merchant_id,
        business.code,
        customer,
        on,
        reason,
        costs,
        interest,
        by_rate,
        entry_id,
        total,
        claims,
    )
    cur = business.currency
    vat = sum(vat_from_gross(g, Decimal(r)) for r, g in by_rate.items() if r != NO_RATE)
    await emit(
        conn,
        business,
        "debt.written_off",
        {
            "customer": customer,
            "write_off_id": write_off_id,
            "amount": format_amount(total, cur),
            "principal": format_amount(sum(by_rate.values()), cur),
            "vat_corrected": format_amount(vat, cur),
            "costs": format_amount(costs, cur),
            "interest": format_amount(interest, cur),
            "currency": cur,
            "reason": reason,
            "entry_id": entry_id,
        },
    )
    return WriteOff(write_off_id, entry_id, total)


async def recover(
    ctx: Kontor, conn: Connection, business: Business, customer: str, on: date, *, designation: str | None = None
) -> None:
    """The receivable hook: a customer in credit with written-off debt gets it reinstated and paid.

    `designation`: the order the payment named (§366 (1) BGB), recovered first; see `dunning.recovery`."""
    rows = await conn.fetch(
        "SELECT * FROM write_offs WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND open_minor > 0 "
        "ORDER BY write_off_id FOR UPDATE",
        business.merchant_id,
        business.code,
        customer,
    )
    if not rows:
        return
    available = -await customer_balance(conn, business, customer)
    if available <= 0:
        return
    plans = plan_recovery([_left(r) for r in rows], available, designation)
    roles = await accounts_by_role(ctx, business)
    for row in rows:
        plan = plans.get(row["write_off_id"])
        if plan is not None:
            await _recover_one(ctx, conn, business, roles, customer, row, plan, on)


def _left(row: Any) -> WriteOffLeft:
    """What a write-off row has not recovered yet; rows from before claims were recorded are one claim."""
    recovered: dict[str, Any] = row["recovered"]
    by_claim: dict[str, dict[str, int]] = recovered.get("by_order", {})
    stored = row["principal_by_order"] or [
        {"key": "legacy", "order": None, "due": row["written_off_on"].isoformat(), "by_rate": row["principal_by_rate"]}
    ]
    if row["principal_by_order"] is None:
        by_claim = {"legacy": recovered.get("principal", {})}
    claims = [
        Claim(
            key=c["key"],
            order_ref=c["order"],
            due=date.fromisoformat(c["due"]),
            by_rate={r: g - by_claim.get(c["key"], {}).get(r, 0) for r, g in c["by_rate"].items()},
        )
        for c in stored
    ]
    return WriteOffLeft(
        write_off_id=row["write_off_id"],
        costs=row["costs_minor"] - recovered.get("costs", 0),
        interest=row["interest_minor"] - recovered.get("interest", 0),
        claims=claims,
    )


async def _recover_one(
    ctx: Kontor, conn: Connection, business: Business, roles: Roles, customer: str, row: Any, plan: Recovery, on: date
) -> None:
    by_rate = _summed(plan.principal.values())
    await book(
        ctx,
        conn,
        business,
        _recovery_lines(roles, customer, plan, by_rate, business.currency),
        on=on,
        description=f"Recovery of written-off debt {row['write_off_id']} of customer {customer}",
        reference=customer,
        metadata={"dunning": "recovery", "write_off_id": str(row["write_off_id"])},
    )
    recovered: dict[str, Any] = dict(row["recovered"])
    recovered["costs"] = recovered.get("costs", 0) + plan.costs
    recovered["interest"] = recovered.get("interest", 0) + plan.interest
    recovered["principal"] = _summed([recovered.get("principal", {}), by_rate])
    by_claim = dict(recovered.get("by_order", {}))
    for key, parts in plan.principal.items():
        by_claim[key] = _summed([by_claim.get(key, {}), parts])
    recovered["by_order"] = by_claim
    await conn.execute(
        "UPDATE write_offs SET recovered = $3, open_minor = open_minor - $4 WHERE merchant_id = $1 AND write_off_id = $2",
        business.merchant_id,
        row["write_off_id"],
        recovered,
        plan.total,
    )


def _recovery_lines(roles: Roles, customer: str, plan: Recovery, by_rate: dict[str, int], cur: str) -> list[LineDraft]:
    """Dr AR the recovered amount; Cr RECOV costs, interest and the principal's net; Cr VAT_r its tax."""
    recov: Account = roles("RECOV")
    lines = [LineDraft(roles("AR"), Side.DEBIT, plan.total, cur, customer)]
    if plan.costs + plan.interest:
        lines.append(LineDraft(recov, Side.CREDIT, plan.costs + plan.interest, cur))
    vat_lines, principal_net = [], 0
    for rate_text, gross in sorted(by_rate.items()):
        tax = vat_from_gross(gross, Decimal(rate_text)) if rate_text != NO_RATE else 0
        principal_net += gross - tax
        if tax:
            vat_lines.append(LineDraft(roles.per_rate("VAT", Decimal(rate_text)), Side.CREDIT, tax, cur))
    if principal_net:
        lines.append(LineDraft(recov, Side.CREDIT, principal_net, cur))
    return lines + vat_lines
