"""The pure rules of orders paid through Amazon Pay: refund limits and planning, credits per VAT rate, the VAT a
credit takes back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import Unprocessable
from ledger.money import vat_from_gross
from payments.domain import (
    ChargeRoom,
    OrderMoney,
    RateTotals,
    amazon_allowance,
    credit_tax,
    plan_refund,
    refund_headroom,
    refundable,
    split_by_rate,
)


def room(captured: int, refunds: int = 0, count: int = 0, chargebacks: int = 0, cid: str = "C1") -> ChargeRoom:
    return ChargeRoom(charge_id=cid, captured=captured, refunds=refunds, refund_count=count, chargebacks=chargebacks)


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
    assert refund_headroom(room(1_000_000), "JPY") == 1_008_400  # min(150,000, 8,400) yen


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
    limits = {r.charge_id: refund_headroom(r, "EUR") for r in rooms}
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


def test_amazon_allows_8400_yen_not_75() -> None:
    """Amazon v2 refund limit: captured + min(15 %, 75 USD/GBP/EUR, 8,400 JPY)."""
    assert amazon_allowance(1_000_000, "JPY") == 8_400
    assert amazon_allowance(10_000, "JPY") == 1_500
    assert amazon_allowance(100_000, "GBP") == 7_500


def _credits(unit: int, units: int, rate: Decimal) -> list[int]:
    """Return `units` units of an invoice of `units` x `unit` one at a time: the VAT each credit takes back."""
    taken: list[int] = []
    for n in range(units):
        totals = RateTotals(unit * units, vat_from_gross(unit * units, rate), n * unit, sum(taken))
        taken.append(credit_tax({rate: unit}, {rate: totals})[rate])
    return taken


def test_unit_returns_reverse_exactly_the_invoiced_vat() -> None:
    """3 x 1.05 EUR at 19 %: the invoice books 0.50 VAT; per unit each credit would take 0.17 (0.51)."""
    assert _credits(105, 3, Decimal(19)) == [17, 17, 16]


@given(st.integers(1, 10**6), st.integers(1, 40), st.sampled_from([Decimal(19), Decimal(7), Decimal("5.5")]))
def test_credits_of_a_whole_invoice_reverse_its_vat_to_the_cent(unit: int, units: int, rate: Decimal) -> None:
    taken = _credits(unit, units, rate)
    assert sum(taken) == vat_from_gross(unit * units, rate)
    assert all(0 <= t <= unit for t in taken)  # never more VAT than gross
    assert all(abs(t - vat_from_gross(unit, rate)) <= 1 for t in taken)  # each within a cent of its own VAT


@given(
    st.lists(st.integers(1, 10**5), min_size=1, max_size=12),
    st.lists(st.integers(1, 10**5), min_size=1, max_size=12),
    st.sampled_from([Decimal(19), Decimal(7)]),
)
def test_credits_never_take_back_more_vat_than_invoiced(invoices: list[int], credits: list[int], rate: Decimal) -> None:
    totals = RateTotals(sum(invoices), sum(vat_from_gross(g, rate) for g in invoices))
    for gross in credits:
        if totals.credited_gross + gross > totals.invoiced_gross:
            break
        tax = credit_tax({rate: gross}, {rate: totals})[rate]
        totals = RateTotals(totals.invoiced_gross, totals.invoiced_tax, totals.credited_gross + gross,
                            totals.credited_tax + tax)  # fmt: skip
        assert 0 <= totals.credited_tax <= totals.invoiced_tax
    if totals.credited_gross == totals.invoiced_gross:
        assert totals.credited_tax == totals.invoiced_tax
