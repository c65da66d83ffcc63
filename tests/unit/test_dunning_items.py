"""Open items replayed from receivable lines, and default interest (docs/accounting.md, "Dunning")."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from dunning.items import Event, default_interest, open_items

DAY0 = date(2026, 1, 5)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def worked_example_until_chargeback() -> list[Event]:
    """The example: invoice 119.00, captured; return 35.70 refunded; goodwill 11.90 refunded; chargeback 71.40."""
    return [
        Event(day(0), 1, -11900, "payment"),  # one-step: captured before the invoice
        Event(day(0), 2, 11900, "claim", "o1", day(0)),
        Event(day(10), 3, -3570, "credit_note", "o1"),
        Event(day(10), 4, 3570, "other"),  # refund paid out
        Event(day(12), 5, -1190, "credit_note", "o1"),
        Event(day(12), 6, 1190, "other"),
        Event(day(40), 7, 7140, "claim", "o1", day(40)),  # chargeback: the claim revives
    ]


def test_the_worked_example_leaves_the_chargeback_open_and_due_from_its_day() -> None:
    items = open_items(worked_example_until_chargeback())
    assert (items.principal_open, items.costs, items.interest, items.credit) == (7140, 0, 0, 0)
    assert [(b.key, b.due, b.open) for b in items.overdue(day(41))] == [("o1", day(40), 7140)]
    assert items.overdue(day(40)) == []  # due that day: not overdue yet


def test_interest_of_the_worked_example() -> None:
    items = open_items(worked_example_until_chargeback())
    rates = [(date(2020, 1, 1), Decimal(2))]  # the example's placeholder base rate: 2 % + 5 points = 7 %
    buckets = list(items.principal.values())
    # default from day 56 (reminder on day 41, pay by day 55); 71.40 x 7 % x 15/365 = 0.2054
    assert default_interest(buckets, default_on=day(56), through=day(70), points=Decimal(5), base_rates=rates) == 21
    # to day 84: 29 days = 0.3971 -> 0.40 (0.19 more than booked)
    assert default_interest(buckets, default_on=day(56), through=day(84), points=Decimal(5), base_rates=rates) == 40
    assert default_interest(buckets, default_on=day(56), through=day(55), points=Decimal(5), base_rates=rates) == 0


def test_interest_follows_base_rate_changes_and_payments() -> None:
    events = [Event(date(2025, 6, 1), 1, 100_000, "claim", "o1", date(2025, 6, 1))]
    events.append(Event(date(2025, 7, 11), 2, -50_000, "payment"))
    buckets = list(open_items(events).principal.values())
    rates = [(date(2025, 1, 1), Decimal("2.27")), (date(2025, 7, 1), Decimal("1.27"))]
    # 1,000.00 for June 21-30 (10 days at 11.27 %), 1,000.00 July 1-10 (10 days at 10.27 %), 500.00 July 11-20
    expected = (100_000 * Decimal("11.27") * 10 + 100_000 * Decimal("10.27") * 10 + 50_000 * Decimal("10.27") * 10) / (
        100 * 365
    )
    got = default_interest(
        buckets, default_on=date(2025, 6, 21), through=date(2025, 7, 20), points=Decimal(9), base_rates=rates
    )
    assert got == int(expected.quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def test_payments_go_to_costs_then_interest_then_the_oldest_principal() -> None:
    events = [
        Event(day(0), 1, 5000, "claim", "old", day(0)),
        Event(day(5), 2, 3000, "claim", "new", day(5)),
        Event(day(30), 3, 250, "fee"),
        Event(day(30), 4, 40, "interest"),
        Event(day(40), 5, -3000, "payment"),
    ]
    items = open_items(events)
    assert (items.costs, items.interest) == (0, 0)
    assert {k: b.open for k, b in items.principal.items()} == {"old": 2290, "new": 3000}


def test_a_write_off_clears_and_a_later_payment_is_credit_until_recovered() -> None:
    events = [
        *worked_example_until_chargeback(),
        Event(day(70), 8, 100, "fee"),
        Event(day(70), 9, 21, "interest"),
        Event(day(120), 10, -7261, "write_off"),
        Event(day(200), 11, -3000, "payment"),
    ]
    items = open_items(events)
    assert (items.total, items.credit) == (-3000, 3000)
    items.apply(Event(day(200), 12, 3000, "recovery"))
    assert items.total == 0


@given(
    st.lists(st.tuples(st.sampled_from(["claim", "payment", "fee", "interest", "credit_note"]), st.integers(1, 10**6)))
)
def test_the_open_total_is_always_the_balance(moves: list[tuple[str, int]]) -> None:
    events = []
    balance = 0
    for n, (kind, amount) in enumerate(moves):
        signed = -amount if kind in ("payment", "credit_note") else amount
        events.append(Event(day(n), n, signed, kind, "o1", day(n)))
        balance += signed
    items = open_items(events)
    assert items.total == balance
    assert min(items.costs, items.interest, items.credit, *(b.open for b in items.principal.values()), 0) == 0
