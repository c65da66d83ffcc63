"""Write-offs with VAT correction (§17 (2) no. 1 UStG) and recovery of written-off debts.

A write-off takes the customer's open costs, interest and overdue principal off the receivable. The
principal is split over the VAT rates of its order in proportion to what is invoiced and not credited
(largest remainder), each part's VAT extracted half-up: Dr LOSS_r net + Dr VAT_r tax. Costs, interest
and principal of no known rate go to LOSS0 without VAT. Cr AR (customer) with the total.

A payment that arrives later (an add-payment call, a bank statement line, a capture or settlement
row: every path ends in `emit_balance`, which runs this module's receivable hook) leaves the customer
in credit; the hook then reinstates the written-off debt by that amount, allocated costs -> interest ->
principal (§367 BGB), principal pro rata over its rates: Dr AR / Cr RECOV (costs, interest, principal
net) and Cr VAT_r (the VAT on the recovered principal is due again). The customer's account is then
balanced and the payment has paid the old debt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dunning.items import Bucket
from ledger.context import Kontor
from ledger.domain import Account, Business, LineDraft, Side
from ledger.money import allocate, format_amount, vat_from_gross
from payments.bookings import book, roles_of
from payments.domain import Roles
from payments.notify import emit
from payments.store import open_by_rate

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["NO_RATE", "WriteOff", "recover", "split_principal", "write_off"]

NO_RATE = "none"


@dataclass(frozen=True)
class WriteOff:
    write_off_id: int
    entry_id: int
    amount: int


def _rate_text(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


async def split_principal(conn: Connection, business: Business, buckets: list[Bucket]) -> dict[str, int]:
    """Gross principal per VAT rate ("19", "7", ...; "none" without an order), pro rata per order."""
    by_rate: dict[str, int] = {}
    for bucket in buckets:
        weights = await open_by_rate(conn, business, bucket.order_ref) if bucket.order_ref else {}
        weights = {rate: w for rate, w in weights.items() if w > 0}
        if not weights:
            by_rate[NO_RATE] = by_rate.get(NO_RATE, 0) + bucket.open
            continue
        rates = sorted(weights, reverse=True)
        for rate, part in zip(rates, allocate(bucket.open, [weights[r] for r in rates]), strict=True):
            by_rate[_rate_text(rate)] = by_rate.get(_rate_text(rate), 0) + part
    return {rate: amount for rate, amount in by_rate.items() if amount}


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
    roles = await roles_of(ctx, business)
    by_rate = await split_principal(conn, business, principal)
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
        "principal_by_rate, entry_id, open_minor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "RETURNING write_off_id",
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


async def recover(ctx: Kontor, conn: Connection, business: Business, customer: str, on: date) -> None:
    """The receivable hook: a customer in credit with written-off debt gets it reinstated and paid."""
    rows = await conn.fetch(
        "SELECT * FROM write_offs WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND open_minor > 0 "
        "ORDER BY write_off_id FOR UPDATE",
        business.merchant_id,
        business.code,
        customer,
    )
    if not rows:
        return
    balance = await conn.fetchval(
        "SELECT COALESCE(sum(CASE side WHEN 'D' THEN amount_minor ELSE -amount_minor END), 0) FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND customer = $3 AND currency = $4",
        business.merchant_id,
        business.code,
        customer,
        business.currency,
    )
    available = -int(balance)
    roles = await roles_of(ctx, business)
    for row in rows:
        if available <= 0:
            return
        take = min(available, row["open_minor"])
        await _recover_one(ctx, conn, business, roles, customer, row, take, on)
        available -= take


async def _recover_one(
    ctx: Kontor,
    conn: Connection,
    business: Business,
    roles: Roles,
    customer: str,
    row: Any,
    amount: int,
    on: date,
) -> None:
    recovered: dict[str, Any] = dict(row["recovered"])
    left = amount
    parts: dict[str, int] = {}
    for name, total in (("costs", row["costs_minor"]), ("interest", row["interest_minor"])):
        parts[name] = min(total - recovered.get(name, 0), left)
        left -= parts[name]
    principal_left = {
        rate: gross - recovered.get("principal", {}).get(rate, 0) for rate, gross in row["principal_by_rate"].items()
    }
    principal_left = {rate: v for rate, v in principal_left.items() if v > 0}
    by_rate: dict[str, int] = {}
    if left and principal_left:
        rates = sorted(principal_left)
        by_rate = dict(zip(rates, allocate(left, [principal_left[r] for r in rates]), strict=True))
    recov: Account = roles("RECOV")
    cur = business.currency
    lines = [LineDraft(roles("AR"), Side.DEBIT, amount, cur, customer)]
    if parts["costs"] + parts["interest"]:
        lines.append(LineDraft(recov, Side.CREDIT, parts["costs"] + parts["interest"], cur))
    vat_lines, principal_net = [], 0
    for rate_text, gross in by_rate.items():
        tax = vat_from_gross(gross, Decimal(rate_text)) if rate_text != NO_RATE else 0
        principal_net += gross - tax
        if tax:
            vat_lines.append(LineDraft(roles.per_rate("VAT", Decimal(rate_text)), Side.CREDIT, tax, cur))
    if principal_net:
        lines.append(LineDraft(recov, Side.CREDIT, principal_net, cur))
    lines += vat_lines
    await book(
        ctx,
        conn,
        business,
        lines,
        on=on,
        description=f"Recovery of written-off debt {row['write_off_id']} of customer {customer}",
        reference=customer,
        metadata={"dunning": "recovery", "write_off_id": str(row["write_off_id"])},
    )
    recovered["costs"] = recovered.get("costs", 0) + parts["costs"]
    recovered["interest"] = recovered.get("interest", 0) + parts["interest"]
    principal = dict(recovered.get("principal", {}))
    for rate_text, gross in by_rate.items():
        principal[rate_text] = principal.get(rate_text, 0) + gross
    recovered["principal"] = principal
    await conn.execute(
        "UPDATE write_offs SET recovered = $3, open_minor = open_minor - $4 WHERE merchant_id = $1 AND write_off_id = $2",
        business.merchant_id,
        row["write_off_id"],
        recovered,
        amount,
    )
