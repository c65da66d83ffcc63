"""Which written-off debt a later payment recovers, and at which VAT rates: pure, no I/O.

A write-off records its principal per claim (an order, or a claim of no order) with the claim's due date and
its gross per VAT rate. A payment that reaches a customer with written-off debt is applied (BGB):
1. to the dunning costs, then the default interest of the write-offs, oldest write-off first (§367 (1));
2. to the claim the debtor named with the payment, e.g. the order of an order payment (§366 (1));
3. to the other claims, the one due first first (§366 (2): the oldest debt), ties by write-off and claim;
within one claim pro rata over its VAT rates (largest remainder), so the VAT that becomes due again
(§17 (2) no. 1 sentence 2 UStG) is the VAT of the claim that was paid, at its own rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ledger.money import allocate

__all__ = ["Claim", "Recovery", "WriteOffLeft", "plan_recovery"]


@dataclass
class Claim:
    """One written-off claim of a write-off, with what is not yet recovered: gross per VAT rate text."""

    key: str  # the order reference, "entry:<id>" for a claim of no order, "legacy" for old write-offs
    order_ref: str | None
    due: date
    by_rate: dict[str, int]

    @property
    def left(self) -> int:
        return sum(self.by_rate.values())


@dataclass
class WriteOffLeft:
    """What a write-off still has open: costs, interest and its claims (minor units)."""

    write_off_id: int
    costs: int
    interest: int
    claims: list[Claim]


@dataclass
class Recovery:
    """What one write-off recovers: costs, interest, and gross per claim and VAT rate."""

    costs: int = 0
    interest: int = 0
    principal: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.costs + self.interest + sum(sum(p.values()) for p in self.principal.values())


def plan_recovery(write_offs: list[WriteOffLeft], amount: int, designation: str | None) -> dict[int, Recovery]:
    """Split `amount` (minor units) over the write-offs, in the order of the module docstring; by write-off id.

    `write_offs` oldest first; `designation` an order reference or None. Returns only write-offs that recover
    something; the sum of all recoveries is min(amount, everything open)."""
    plans: dict[int, Recovery] = {w.write_off_id: Recovery() for w in write_offs}
    for name in ("costs", "interest"):
        for w in write_offs:
            take = min(amount, getattr(w, name) - getattr(plans[w.write_off_id], name))
            setattr(plans[w.write_off_id], name, getattr(plans[w.write_off_id], name) + take)
            amount -= take
    claims = [(w.write_off_id, c) for w in write_offs for c in w.claims if c.left > 0]
    claims.sort(key=lambda wc: (designation is None or wc[1].order_ref != designation, wc[1].due, wc[0], wc[1].key))
    for write_off_id, claim in claims:
        if amount <= 0:
            break
        take = min(amount, claim.left)
        rates = sorted(claim.by_rate)
        parts = allocate(take, [claim.by_rate[r] for r in rates])
        plans[write_off_id].principal[claim.key] = {r: p for r, p in zip(rates, parts, strict=True) if p}
        amount -= take
    return {i: p for i, p in plans.items() if p.total}
