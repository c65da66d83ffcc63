"""What a dunning run does with one customer on one day: pure, no database, no I/O.

Given the customer's open items (`dunning.items`), its dunning state (`State`, a row of dunning_accounts),
the policy (`dunning.policy`), what the run knows about the customer (`RunContext`: paused orders, open
disputes, billed as a company) and the base rates, `decide` returns one `Decision`, in this order:
- nothing overdue open: a dunning cycle that was running is reset (`reset`), else nothing (`none`);
- with the collection agency, in an open dispute, paused, only paused items overdue, or owing more than one
  booking line holds: skipped, with the reason (`skip`);
- open amount up to the underpayment threshold: written off at once (`write_off`);
- dunning off, or overdue principal below the threshold: written off once the oldest overdue item is
  `write_off_days` overdue;
- after the final level, once `after_final_days` passed: handed to collection (`collection`, status 90) or
  written off, as the policy says;
- else at most one level up when it is due (level 1 `days` after the oldest due date, later levels `days`
  after the previous notice, never two notices a day): `notice` at that level with its fee, the B2B flat fee
  (§288 (5) BGB) once in default, and the default interest (§288 (1), (2) BGB, `dunning.items.default_interest`)
  accrued since the default date less what was booked.
A cycle whose notices were all paid is over (`current_cycle`): a claim overdue later starts at level 1 again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dunning.items import Bucket, OpenItems, default_interest, rate_on, settled_since
from ledger.errors import present
from ledger.money import AMOUNT_MINOR_MAX, format_amount

if TYPE_CHECKING:
    from dunning.policy import Policy

__all__ = ["Decision", "RunContext", "State", "current_cycle", "decide", "notice_content", "notice_items_key"]

IN_COLLECTION = (90, 91, 95, 96, 97)  # collection statuses that leave the customer to the agency (or the merchant)


@dataclass
class State:
    """A customer's row in dunning_accounts (defaults when there is none)."""

    level: int = 0
    last_notice_on: date | None = None
    cycle_started_on: date | None = None
    default_on: date | None = None
    interest_minor: int = 0
    flat_fee_booked: bool = False
    collection_status: int | None = None
    paused_until: date | None = None
    pause_reason: str | None = None

    def paused(self, on: date) -> bool:
        return self.paused_until is not None and self.paused_until >= on


@dataclass
class RunContext:
    paused_orders: dict[str, set[str]]  # customer -> orders paused on the day
    disputed: set[str]  # customers with an open dispute
    business_customers: set[str]  # customers billed as a company (B2B interest and flat fee)


def current_cycle(state: State, items: OpenItems) -> State:
    """The customer's dunning state as it applies to the claims open now.

    A cycle ends when the customer has paid everything its notices asked for, whether or not a run saw the
    account balanced: a claim overdue later starts again at level 1, the free payment reminder, with no
    default date, interest or flat fee carried over (peer ledgers reset dunning counters the same way)."""
    if state.level and settled_since(items, state.last_notice_on):
        return replace(
            state,
            level=0,
            last_notice_on=None,
            cycle_started_on=None,
            default_on=None,
            interest_minor=0,
            flat_fee_booked=False,
        )
    return state


@dataclass
class Decision:
    customer: str
    action: str  # notice, write_off, collection, reset, skip, none
    reason: str | None = None
    level: int = 0
    fee: int = 0
    flat_fee: int = 0
    interest_total: int = 0  # interest to date (the increment is this less what was booked)
    interest_increment: int = 0
    pay_by: date | None = None
    default_on: date | None = None
    cycle_started_on: date | None = None
    overdue: list[Bucket] = field(default_factory=list)
    items: OpenItems | None = None
    amount: int = 0
    final: bool = False  # the policy's last level: the letter announces what follows (`after_final`)
    after_final: str = ""
    interest_points: Decimal | None = None  # points over the base rate (§288 BGB), when interest runs
    base_rate: Decimal | None = None  # the base rate valid on the notice's day

    @property
    def total(self) -> int:
        """What a notice asks for: the overdue principal, every open fee and the interest to date."""
        items = present(self.items, "a notice is decided with the customer's items")
        principal = sum(b.open for b in self.overdue)
        return principal + items.costs + self.fee + self.flat_fee + items.interest + self.interest_increment


def decide(
    customer: str,
    items: OpenItems,
    state: State,
    policy: Policy,
    run: RunContext,
    rates: list[tuple[date, Decimal]],
    on: date,
) -> Decision:
    """One customer's step on day `on` (the module docstring gives the order); amounts in minor units.

    `state` as stored (a cycle that was paid up is ended here), `rates` (valid_from, percent) sorted by date."""
    d = Decision(customer, "none", items=items)
    d.overdue = items.overdue(on, run.paused_orders.get(customer, ()))
    d.amount = sum(b.open for b in d.overdue) + items.costs + items.interest
    stored, state = state, current_cycle(state, items)
    if items.overdue_total(on) <= 0:
        d.action = "reset" if stored.level or stored.default_on else "none"
    elif (why := blocked(customer, state, run, on, d.amount)) is not None:
        d.action, d.reason = "skip", why
    elif d.amount <= policy.underpayment_minor:
        d.action, d.reason = "write_off", "underpayment"
    elif not policy.enabled or sum(b.open for b in d.overdue) < policy.threshold_minor:
        oldest_due = d.overdue[0].due if d.overdue else on
        if oldest_due + timedelta(days=policy.write_off_days) <= on:
            d.action, d.reason = "write_off", "dunning off" if not policy.enabled else "below the dunning threshold"
    elif state.level >= len(policy.levels):
        last_notice_on = present(state.last_notice_on, "a customer past the last level had a notice")
        if last_notice_on + timedelta(days=policy.after_final_days) <= on:
            if policy.after_final == "write_off":
                d.action, d.reason = "write_off", "dunning without success"
            else:
                d.action = "collection"
    else:
        _next_notice(d, state, policy, run, rates, on)
    return d


def blocked(customer: str, state: State, run: RunContext, on: date, owed: int) -> str | None:
    """Why the customer is not dunned today (None: nothing stands in the way); `owed` is what is overdue."""
    if state.collection_status in IN_COLLECTION:
        return f"in collection (status {state.collection_status})"
    if customer in run.disputed:
        return "open dispute"
    if state.paused(on):
        return f"paused: {state.pause_reason}"
    if owed <= 0:
        return "items paused"
    if owed > AMOUNT_MINOR_MAX:  # a write-off or its fees could not be booked as one line: leave it to a person
        return "owes more than one booking line can hold (10^15 minor units): handle by hand"
    return None


def _next_notice(
    d: Decision, state: State, policy: Policy, run: RunContext, rates: list[tuple[date, Decimal]], on: date
) -> None:
    """The next level's notice, if it is due today."""
    levels = policy.levels
    level = state.level + 1
    due_on = (
        (d.overdue[0].due if d.overdue else on) + timedelta(days=levels[0].days)
        if state.level == 0
        else (state.last_notice_on or on) + timedelta(days=levels[level - 1].days)
    )
    if due_on > on or state.last_notice_on == on:
        return
    spec = levels[level - 1]
    d.action, d.level, d.pay_by = "notice", level, on + timedelta(days=spec.payment_term_days)
    d.final, d.after_final = level == len(levels), policy.after_final
    d.cycle_started_on = on if state.level == 0 else state.cycle_started_on
    d.default_on = d.pay_by + timedelta(days=1) if state.level == 0 else state.default_on
    d.fee = spec.fee_minor if level > 1 else 0
    in_default = d.default_on is not None and on >= d.default_on
    is_business = d.customer in run.business_customers
    if in_default and is_business and not state.flat_fee_booked:
        d.flat_fee = policy.flat_fee_minor
    if in_default and policy.interest and d.default_on is not None:
        points = policy.business_points if is_business else policy.consumer_points
        d.interest_total = default_interest(
            d.overdue, default_on=d.default_on, through=on, points=points, base_rates=rates
        )
        d.interest_points, d.base_rate = points, rate_on(rates, on)
        d.interest_increment = max(0, d.interest_total - state.interest_minor)


# --- what a notice stores ------------------------------------------------------------------------------
def notice_items_key(d: Decision) -> str:
    """The notice's part of its unique key (with customer and level): the cycle and the items it dunns."""
    return f"{d.cycle_started_on}:{','.join(b.key for b in d.overdue)}"


def notice_content(d: Decision, currency: str, on: date) -> dict[str, Any]:
    """The content a notice stores when issued on `on` (amounts as decimal strings); it never changes, and the
    notice's document and letter (`dunning.notices`, `dunning.letters`) are rendered from it."""
    items = present(d.items, "a notice is decided with the customer's items")
    pay_by = present(d.pay_by, "a notice is decided with its pay-by date")
    cur = currency
    costs = items.costs + d.fee + d.flat_fee
    interest = items.interest + d.interest_increment
    principal = sum(b.open for b in d.overdue)
    return {
        "customer": d.customer,
        "level": d.level,
        "issued_on": on.isoformat(),
        "pay_by": pay_by.isoformat(),
        "currency": cur,
        "items": [
            {"order_reference": b.order_ref, "due_date": b.due.isoformat(), "amount": format_amount(b.open, cur)}
            for b in d.overdue
        ],
        "principal": format_amount(principal, cur),
        "fee": format_amount(d.fee, cur),
        "flat_fee": format_amount(d.flat_fee, cur),
        "costs": format_amount(costs, cur),
        "interest": format_amount(interest, cur),
        "total": format_amount(principal + costs + interest, cur),
        "default_on": d.default_on.isoformat() if d.default_on else None,
        # what the letter says about itself and its interest (dunning.letters)
        "final": d.final,
        "after_final": d.after_final,
        "interest_points": None if d.interest_points is None else format(d.interest_points.normalize(), "f"),
        "base_rate": None if d.base_rate is None else format(d.base_rate.normalize(), "f"),
    }
