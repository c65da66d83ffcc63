"""dunning.recovery and the dunning cycle: which written-off claim a payment recovers (§366, §367 BGB), and when
a dunning cycle is over (bugs-18)."""

from __future__ import annotations

from datetime import date

from dunning.items import Event, open_items, settled_since
from dunning.recovery import Claim, WriteOffLeft, plan_recovery

D = date(2026, 1, 1)


def two_orders(costs: int = 0, interest: int = 0) -> list[WriteOffLeft]:
    """One write-off of two orders: O-19 (119.00 at 19 %, due later) and O-7 (107.00 at 7 %, due first)."""
    return [
        WriteOffLeft(
            write_off_id=1,
            costs=costs,
            interest=interest,
            claims=[
                Claim("O-19", "O-19", date(2026, 3, 1), {"19": 11900}),
                Claim("O-7", "O-7", date(2026, 2, 1), {"7": 10700}),
            ],
        )
    ]


def test_a_payment_naming_an_order_recovers_that_order_at_its_rate() -> None:
    plan = plan_recovery(two_orders(), 11900, "O-19")
    assert plan[1].principal == {"O-19": {"19": 11900}}


def test_without_a_designation_the_claim_due_first_is_recovered_first() -> None:
    plan = plan_recovery(two_orders(), 12000, None)
    assert plan[1].principal == {"O-7": {"7": 10700}, "O-19": {"19": 1300}}


def test_costs_and_interest_come_before_principal() -> None:
    plan = plan_recovery(two_orders(costs=250, interest=50), 1000, "O-19")
    assert (plan[1].costs, plan[1].interest, plan[1].principal) == (250, 50, {"O-19": {"19": 700}})


def test_a_mixed_rate_claim_is_recovered_pro_rata_and_nothing_beyond_what_is_open() -> None:
    left = [WriteOffLeft(7, 0, 0, [Claim("M", "M", D, {"19": 5950, "7": 5350})])]
    plan = plan_recovery(left, 100_000, None)
    assert plan[7].principal == {"M": {"19": 5950, "7": 5350}}
    assert plan_recovery(left, 5000, None)[7].principal == {"M": {"19": 2633, "7": 2367}}


def test_a_designation_reaches_across_write_offs() -> None:
    older = WriteOffLeft(1, 0, 0, [Claim("A", "A", D, {"7": 1000})])
    newer = WriteOffLeft(2, 0, 0, [Claim("B", "B", date(2026, 5, 1), {"19": 2000})])
    plan = plan_recovery([older, newer], 2000, "B")
    assert set(plan) == {2}
    assert plan[2].principal == {"B": {"19": 2000}}


def events(*pairs: tuple[date, int, str]) -> list[Event]:
    return [Event(on, i, amount, kind, "O-1" if kind == "claim" else None, on) for i, (on, amount, kind) in
            enumerate(pairs)]  # fmt: skip


def test_a_cycle_is_over_once_everything_dunned_was_paid_even_without_a_run_seeing_it() -> None:
    history = events(
        (date(2025, 8, 1), 5000, "claim"),
        (date(2025, 8, 22), 100, "charges"),  # level 2 fee
        (date(2025, 8, 25), -5100, "payment"),  # everything paid
        (date(2025, 9, 1), 3000, "claim"),  # a new claim
    )
    items = open_items(history)
    assert items.settled_on == date(2025, 8, 25)
    assert settled_since(items, date(2025, 8, 22))
    assert not settled_since(items, date(2025, 8, 25 + 1))


def test_a_payment_before_the_notice_on_the_same_day_does_not_end_the_cycle() -> None:
    paid_first = open_items(
        events(
            (date(2025, 8, 1), 5000, "claim"),
            (date(2025, 8, 22), -5000, "payment"),
            (date(2025, 8, 22), 100, "charges"),
        )
    )
    assert not settled_since(paid_first, date(2025, 8, 22))
    paid_after = open_items(
        events(
            (date(2025, 8, 1), 5000, "claim"),
            (date(2025, 8, 22), 100, "charges"),
            (date(2025, 8, 22), -5100, "payment"),
        )
    )
    assert settled_since(paid_after, date(2025, 8, 22))


def test_a_partial_payment_keeps_the_cycle() -> None:
    items = open_items(events((date(2025, 8, 1), 5000, "claim"), (date(2025, 8, 25), -4000, "payment")))
    assert items.settled_on is None
    assert not settled_since(items, date(2025, 8, 22))
