"""Open items of a customer, rebuilt from the journal, and default interest on them. Pure: no I/O.

The customer's receivable lines are replayed in booking order and sorted into buckets:
- principal, one bucket per order (or per other claim), due from its invoice's due date or, for a
  chargeback, from the day it was charged back;
- costs (dunning fees, the B2B 40 EUR flat fee) and interest, which are due at once.
A payment is applied costs -> interest -> principal (§367 BGB), principal oldest due first (§366 (2));
a credit note or goodwill reduces the principal of its own order; a write-off takes costs, interest
and the overdue principal (oldest due first, like a payment, but without §367's order being needed).
Money paid before there is anything to pay is the customer's credit and is used by the next claim (a
one-step order is captured before it is invoiced). Each principal bucket remembers how its open amount
changed over time, which is what interest is computed on.

Interest (§288 BGB): base rate (effective-dated, §247) + 5 points for consumers, + 9 for businesses, on
the open principal of each bucket for every day from the default date (or the bucket's due date, if
later) up to the given day, act/365; no interest on costs or interest (§289). The exact sum is
rounded half-up once, and only the increment over what was booked before is booked.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

__all__ = ["Bucket", "Event", "OpenItems", "default_interest", "open_items", "rate_on", "settled_since"]


class Event(NamedTuple):
    """One receivable line of the customer: + debit (a claim on the customer), - credit."""

    on: date
    entry_id: int
    amount: int
    kind: str  # claim, credit_note, payment, charges (fee, interest), write_off, recovery
    order_ref: str | None = None
    due: date | None = None
    fee: int = 0  # kind "charges": the part that is fees; the rest is interest


@dataclass
class Bucket:
    key: str  # the order reference, or "entry:<id>" for a claim of no order
    order_ref: str | None
    due: date
    open: int = 0
    history: list[tuple[date, int]] = field(default_factory=list)  # (day, open amount from that day on)

    def set(self, on: date, amount: int) -> None:
        self.open = amount
        if self.history and self.history[-1][0] == on:
            self.history[-1] = (on, amount)
        else:
            self.history.append((on, amount))


@dataclass
class OpenItems:
    principal: dict[str, Bucket] = field(default_factory=dict)
    costs: int = 0
    interest: int = 0
    credit: int = 0  # paid beyond what is owed
    # the last day the customer went from owing something to owing nothing, and whether fees or interest were
    # charged on or after that moment (a notice's charges that day come after a payment made before it)
    settled_on: date | None = None
    charged_since_settled: bool = False

    @property
    def principal_open(self) -> int:
        return sum(b.open for b in self.principal.values())

    @property
    def total(self) -> int:
        return self.principal_open + self.costs + self.interest - self.credit

    def overdue(self, on: date, paused: Iterable[str] = ()) -> list[Bucket]:
        """Principal buckets due before `on` with something open, oldest first, without paused orders."""
        skip = set(paused)
        return sorted(
            (b for b in self.principal.values() if b.open > 0 and b.due < on and b.order_ref not in skip),
            key=lambda b: (b.due, b.key),
        )

    def overdue_total(self, on: date, paused: Iterable[str] = ()) -> int:
        """What is overdue on `on`: the overdue principal (without paused orders), the costs and the interest."""
        return sum(b.open for b in self.overdue(on, paused)) + self.costs + self.interest

    # --- replay ---------------------------------------------------------------------------------------
    def _claim(self, event: Event) -> None:
        amount = event.amount
        used = min(self.credit, amount)
        self.credit -= used
        amount -= used
        key = event.order_ref or f"entry:{event.entry_id}"
        bucket = self.principal.get(key)
        if bucket is None:
            bucket = self.principal[key] = Bucket(key, event.order_ref, event.due or event.on)
        elif bucket.open <= 0:
            bucket.due = event.due or event.on  # a claim on a settled order starts its own due date
        else:
            bucket.due = min(bucket.due, event.due or event.on)
        bucket.set(event.on, bucket.open + amount)

    def _credit_note(self, event: Event) -> None:
        amount = -event.amount
        bucket = self.principal.get(event.order_ref or "")
        if bucket is not None and bucket.open > 0:
            used = min(bucket.open, amount)
            bucket.set(event.on, bucket.open - used)
            amount -= used
        if amount:
            self._pay(event.on, amount)

    def _pay(self, on: date, amount: int) -> None:
        """§367: costs, then interest, then principal oldest due first; the rest is the customer's credit."""
        for name in ("costs", "interest"):
            used = min(getattr(self, name), amount)
            setattr(self, name, getattr(self, name) - used)
            amount -= used
        for bucket in sorted(self.principal.values(), key=lambda b: (b.due, b.key)):
            if amount <= 0:
                break
            used = min(bucket.open, amount)
            if used > 0:
                bucket.set(on, bucket.open - used)
                amount -= used
        self.credit += amount

    def _write_off(self, event: Event) -> None:
        """A write-off takes costs, interest and then principal oldest due first (the overdue items come
        first in that order, and only they are written off); anything beyond is credit."""
        amount = -event.amount
        for name in ("costs", "interest"):
            used = min(getattr(self, name), amount)
            setattr(self, name, getattr(self, name) - used)
            amount -= used
        for bucket in sorted(self.principal.values(), key=lambda b: (b.due, b.key)):
            used = min(max(bucket.open, 0), amount)
            if used > 0:
                bucket.set(event.on, bucket.open - used)
                amount -= used
        self.credit += amount

    def apply(self, event: Event) -> None:
        if event.kind == "claim":
            self._claim(event)
        elif event.kind == "credit_note":
            self._credit_note(event)
        elif event.kind in ("charges", "fee", "interest"):
            fee = event.fee if event.kind == "charges" else event.amount if event.kind == "fee" else 0
            self.costs += fee
            self.interest += event.amount - fee
            used = min(self.credit, event.amount)  # what the customer had paid ahead pays them (§367 order)
            self.credit -= used
            for name in ("costs", "interest"):
                take = min(getattr(self, name), used)
                setattr(self, name, getattr(self, name) - take)
                used -= take
        elif event.kind == "write_off":
            self._write_off(event)
        elif event.kind == "recovery":
            self.credit -= event.amount  # reinstates what a payment after the write-off paid (credit back to 0)
        elif event.amount > 0:  # a debit of no other kind (e.g. a refund paid out) takes from credit first
            self._claim(event)
        else:
            self._pay(event.on, -event.amount)


def open_items(events: Iterable[Event]) -> OpenItems:
    items = OpenItems()
    for event in events:
        owed = items.total > 0
        items.apply(event)
        if event.kind in ("charges", "fee", "interest"):
            items.charged_since_settled = True
        if owed and items.total <= 0:
            items.settled_on, items.charged_since_settled = event.on, False
    return items


def settled_since(items: OpenItems, day: date | None) -> bool:
    """True when the customer has owed nothing at some moment after `day`'s notice (its charges included):
    everything dunned then was paid, so a claim that is overdue now starts a new cycle at level 1."""
    if items.settled_on is None or day is None:
        return False
    return items.settled_on > day or (items.settled_on == day and not items.charged_since_settled)


def rate_on(rates: Sequence[tuple[date, Decimal]], day: date) -> Decimal:
    """The base rate valid on `day` (rates are (valid_from, percent) sorted by date; 0 before the first)."""
    current = Decimal(0)
    for valid_from, rate in rates:
        if valid_from > day:
            break
        current = rate
    return current


def default_interest(
    buckets: Iterable[Bucket],
    *,
    default_on: date,
    through: date,
    points: Decimal,
    base_rates: Sequence[tuple[date, Decimal]],
) -> int:
    """Interest in minor units on the buckets' open principal from `default_on` through `through`.

    Every day counts with the base rate valid that day; the rates are (valid_from, percent) sorted by date.
    The exact sum is rounded half-up once.
    """
    changes = sorted({d for d, _ in base_rates if default_on < d <= through})
    # exact in integers: rates have at most 3 decimals, so sum(amount x rate x 1000 x days) / (100 x 365 x 1000)
    numerator = 0
    for bucket in buckets:
        start = max(default_on, bucket.due + timedelta(days=1))
        steps = [*bucket.history, (through + timedelta(days=1), 0)]
        for (since, amount), (until, _) in itertools.pairwise(steps):
            lo, hi = max(since, start), min(until, through + timedelta(days=1))  # [lo, hi)
            if amount <= 0 or lo >= hi:
                continue
            cuts = [lo, *(c for c in changes if lo < c < hi), hi]
            for a, b in itertools.pairwise(cuts):
                rate_milli = int((rate_on(base_rates, a) + points) * 1000)
                numerator += amount * rate_milli * (b - a).days
    if numerator <= 0:
        return 0
    whole, rest = divmod(numerator, 100 * 365 * 1000)
    return whole + (1 if 2 * rest >= 100 * 365 * 1000 else 0)  # half-up
