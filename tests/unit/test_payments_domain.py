"""The pure rules of orders paid through Amazon Pay: refund limits and planning, credits per VAT rate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import Unprocessable
from payments.domain import CaptureRoom, OrderMoney, plan_refund, refund_headroom, refundable, split_by_rate


def room(captured: int, refunds: int = 0, count: int = 0, chargebacks: int = 0, cid: str = "C1") -> CaptureRoom:
    return CaptureRoom(capture_id=cid, captured=captured, refunds=refunds, refund_count=count, chargebacks=chargebacks)


@pytest.mark.parametrize(
    ("captured", "refunds", "count", "chargebacks", "headroom"),
    [
        (10_000, 0, 0, 0, 11_500),  # 100.00 + 15 %
        (100_000, 0, 0, 0, 107_500),  # 1,000.00 + 75.00 (15 % would be 150.00)
        (50_000, 0, 0, 0, 57_500),  # 500.00: 15 % is exactly 75.00
        (10_000, 4_000, 3, 0, 7_500),
        (10_000, 4_000, 3, 6_000, 1_500),  # chargebacks count against the same limit
        (10_000, 0, 10, 0, 0),  # the 10th refund was the last
        (10_000, 12_000, 2, 0, 0),  # never negative
    ],
)
def test_refund_headroom(captured: int, refunds: int, count: int, chargebacks: int, headroom: int) -> None:
    assert refund_headroom(room(captured, refunds, count, chargebacks), "EUR") == headroom


def test_headroom_in_a_currency_without_minor_units() -> None:
    assert refund_headroom(room(1_000_000), "JPY") == 1_000_075  # min(150,000, 75) yen


def test_a_refund_spreads_over_captures_largest_headroom_first() -> None:
    rooms = [room(5_000, cid="A"), room(10_000, cid="B")]
    assert plan_refund(12_000, rooms, "EUR") == [("B", 11_500), ("A", 500)]
    assert plan_refund(0, rooms, "EUR") == []


def test_a_refund_beyond_amazons_limits_is_refused() -> None:
    with pytest.raises(Unprocessable) as refused:
        plan_refund(11_501, [room(10_000)], "EUR")
    assert refused.value.code == "refund_limit_exceeded"
    with pytest.raises(Unprocessable):
        plan_refund(1, [room(10_000, count=10)], "EUR")
    with pytest.raises(Unprocessable):
        plan_refund(2_000, [room(10_000, chargebacks=10_000)], "EUR")


@given(
    st.lists(st.integers(1, 10**9), min_size=1, max_size=5),
    st.integers(1, 10**10),
)
def test_a_refund_plan_never_exceeds_any_captures_headroom(captures: list[int], amount: int) -> None:
    rooms = [room(c, cid=f"C{i}") for i, c in enumerate(captures)]
    try:
        plan = plan_refund(amount, rooms, "EUR")
    except Unprocessable:
        assert amount > sum(refund_headroom(r, "EUR") for r in rooms)
        return
    assert sum(take for _, take in plan) == amount
    limits = {r.capture_id: refund_headroom(r, "EUR") for r in rooms}
    assert all(0 < take <= limits[cid] for cid, take in plan)


def test_refundable_follows_what_was_paid() -> None:
    paid = OrderMoney(invoiced=10_000, credited=0, paid=10_000, refunded=0, prepaid_open=0)
    assert refundable(paid, 3_000) == 3_000
    unpaid = OrderMoney(invoiced=10_000, credited=0, paid=0, refunded=0, prepaid_open=0)
    assert refundable(unpaid, 3_000) == 0  # offset against what is open
    half = OrderMoney(invoiced=10_000, credited=0, paid=5_000, refunded=0, prepaid_open=0)
    assert refundable(half, 8_000) == 3_000  # after the credit 2,000 is owed; of 5,000 paid, 3,000 goes back


@given(
    st.integers(1, 10**9),
    st.dictionaries(st.sampled_from([Decimal(19), Decimal(7), Decimal(0)]), st.integers(1, 10**9), min_size=1),
)
def test_a_gross_split_by_rate_loses_no_cent(gross: int, open_by_rate: dict[Decimal, int]) -> None:
    if gross > sum(open_by_rate.values()):
        with pytest.raises(Unprocessable):
            split_by_rate(gross, open_by_rate)
        return
    parts = split_by_rate(gross, open_by_rate)
    assert sum(parts.values()) == gross
    assert all(0 < parts[r] <= open_by_rate[r] for r in parts)
