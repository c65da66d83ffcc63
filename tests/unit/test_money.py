"""Money: parsing and formatting per currency, half-up VAT extraction, largest-remainder allocation.

Method: worked examples for each rule, plus hypothesis properties (round trips, sums preserved)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import (
    AMOUNT_MINOR_MAX,
    AmountError,
    allocate,
    currency_decimals,
    format_amount,
    is_known_currency,
    parse_amount,
    vat_from_gross,
)


@pytest.mark.parametrize(("currency", "decimals"), [("EUR", 2), ("GBP", 2), ("JPY", 0), ("BHD", 3), ("KWD", 3)])
def test_currency_decimals_follow_iso_4217(currency: str, decimals: int) -> None:
    assert currency_decimals(currency) == decimals


@pytest.mark.parametrize("code", ["XAU", "XXX", "XTS", "EURO", "eur", "ZZZ", ""])
def test_non_money_codes_are_unknown(code: str) -> None:
    assert not is_known_currency(code)
    with pytest.raises(AmountError):
        currency_decimals(code)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("119.00", "EUR", 11900),
        ("119", "EUR", 11900),
        ("0.01", "EUR", 1),
        ("1.10", "EUR", 110),
        ("1.100", "EUR", 110),
        ("500", "JPY", 500),
        ("1.234", "BHD", 1234),
        ("10000000000000.00", "EUR", 10**15),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("1.001", "EUR", "more than 2 decimals"),
        ("1.5", "JPY", "more than 0 decimals"),
        ("0", "EUR", "greater than zero"),
        ("0.00", "EUR", "greater than zero"),
        ("-1.00", "EUR", "plain decimal"),
        ("1e3", "EUR", "plain decimal"),
        ("NaN", "EUR", "plain decimal"),
        ("Infinity", "EUR", "plain decimal"),
        ("1.", "EUR", "plain decimal"),
        (".5", "EUR", "plain decimal"),
        ("1,00", "EUR", "plain decimal"),
        ("", "EUR", "plain decimal"),
        ("1.2.3", "EUR", "plain decimal"),
        ("10000000000000.01", "EUR", "maximum"),
        (" 1.00", "EUR", "plain decimal"),
    ],
)
def test_parse_amount_refuses_instead_of_rounding(text: str, currency: str, reason: str) -> None:
    with pytest.raises(AmountError, match=reason):
        parse_amount(text, currency)


def test_zero_allowed_when_asked() -> None:
    assert parse_amount("0.00", "EUR", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (11900, "EUR", "119.00"),
        (5, "EUR", "0.05"),
        (-5, "EUR", "-0.05"),
        (0, "EUR", "0.00"),
        (500, "JPY", "500"),
        (-500, "JPY", "-500"),
        (1234, "BHD", "1.234"),
        (-100, "GBP", "-1.00"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@given(st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX), st.sampled_from(["EUR", "JPY", "BHD", "GBP"]))
def test_format_then_parse_round_trips(minor: int, currency: str) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("gross", "rate", "tax"),
    [
        (11900, "19", 1900),
        (1000, "19", 160),
        (10700, "7", 700),
        (100, "7", 7),
        (11900, "0", 0),
        # 20 %: tax = gross / 6; these land exactly on half a cent, where half-up and banker's rounding differ
        (3, "20", 1),
        (9, "20", 2),
        (15, "20", 3),
        (21, "20", 4),
        (-15, "20", -3),
        (10550, "5.5", 550),
    ],
)
def test_vat_from_gross_rounds_half_up(gross: int, rate: str, tax: int) -> None:
    assert vat_from_gross(gross, Decimal(rate)) == tax


@given(st.integers(min_value=0, max_value=10**13), st.sampled_from(["19", "7", "20", "5.5", "2.1", "0"]))
def test_vat_is_within_half_a_cent_of_exact(gross: int, rate: str) -> None:
    r = Decimal(rate)
    exact = Decimal(gross) * r / (100 + r)
    tax = vat_from_gross(gross, r)
    assert abs(Decimal(tax) - exact) <= Decimal("0.5")
    assert 0 <= tax <= gross


def test_allocate_examples() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(5, [0, 1]) == [0, 5]
    assert allocate(1000, [11900, 10700]) == [527, 473]  # 526.55 and 473.45: the larger remainder wins
    assert allocate(1, [1, 1]) == [1, 0]  # ties go to the earlier part


def test_allocate_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="at least one"):
        allocate(1, [])
    with pytest.raises(ValueError, match="negative"):
        allocate(1, [1, -1])
    with pytest.raises(ValueError, match="all be zero"):
        allocate(1, [0, 0])


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(any),
)
def test_allocate_loses_nothing_and_stays_proportional(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Decimal(total) * weight / weight_sum
        assert abs(Decimal(part) - exact) < 1
