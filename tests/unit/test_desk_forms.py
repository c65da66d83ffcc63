"""Amounts typed into the web pages' forms are read as the page's locale writes them, exactly, and an amount that
could be read two ways is refused (desk.formats.parse_local_amount); plural labels follow the catalogue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desk.formats import AmountTextError, Formats, parse_local_amount
from desk.i18n import Language


@pytest.mark.parametrize(
    ("locale", "typed", "wire"),
    [
        ("de_DE", "1.500", "1500.00"),  # a German page: the point groups thousands
        ("de_DE", "1.000,50", "1000.50"),
        ("de_DE", "1500", "1500.00"),
        ("de_DE", "1500,5", "1500.50"),
        ("de_DE", "0,01", "0.01"),
        ("de_DE", " 12,50 ", "12.50"),
        ("de_DE", "1.234.567,89", "1234567.89"),
        ("de_AT", "1.500,00", "1500.00"),
        ("en_US", "1,500.00", "1500.00"),
        ("en_US", "1,500", "1500.00"),
        ("en_US", "0.5", "0.50"),
        ("fr_FR", "1 500,00", "1500.00"),  # a typed space for the narrow no-break space
        ("fr_FR", "1\u202f500,00", "1500.00"),
        ("de_CH", "1'500.50", "1500.50"),
    ],
)
def test_amounts_are_read_in_the_pages_locale(locale: str, typed: str, wire: str) -> None:
    assert parse_local_amount(typed, locale, "EUR") == wire


@pytest.mark.parametrize(
    ("locale", "typed", "reason"),
    [
        ("de_DE", "1.50", "digit groups"),  # an English writer's 1.50: not guessed
        ("de_DE", "10.00", "digit groups"),
        ("de_DE", "1.000.50", "digit groups"),
        ("de_DE", "1.", "digit groups"),
        ("de_DE", ".50", "digit groups"),
        ("de_DE", "1500.00", "digit groups"),
        ("de_DE", "1,500", "too many decimals"),  # an English writer's fifteen hundred
        ("en_US", "1.500", "too many decimals"),
        ("en_US", "1,50", "digit groups"),
        ("en_US", "1,5000.00", "digit groups"),
        ("de_DE", "1,2,3", "not an amount"),
        ("de_DE", "12 EUR", "not an amount"),
        ("de_DE", "1e3", "not an amount"),
        ("de_DE", "١٢", "not an amount"),  # Arabic-Indic digits
        ("de_DE", "", "empty"),
        ("de_DE", ",", "not an amount"),
        ("de_DE", "-5,00", "sign"),
        ("de_DE", "+5", "sign"),
        ("de_DE", "0,00", "zero"),
        ("de_DE", "9" * 30, "too large"),
        ("de_DE", "1" * 41, "not an amount"),
    ],
)
def test_malformed_or_ambiguous_amounts_are_refused(locale: str, typed: str, reason: str) -> None:
    with pytest.raises(AmountTextError) as refused:
        parse_local_amount(typed, locale, "EUR")
    assert refused.value.reason == reason


def test_a_currency_without_decimals() -> None:
    assert parse_local_amount("1.500", "de_DE", "JPY") == "1500"
    with pytest.raises(AmountTextError):
        parse_local_amount("1500,5", "de_DE", "JPY")


@given(st.integers(min_value=1, max_value=10**13))
def test_what_a_page_writes_it_reads_back_exactly(minor: int) -> None:
    wire = f"{minor // 100}.{minor % 100:02d}"
    for locale in ("de_DE", "de_AT", "de_CH", "fr_CH", "en_US", "en_GB", "fr_FR"):
        shown = Formats(locale, "EUR").amount(wire)
        assert parse_local_amount(shown, locale, "EUR") == wire, (locale, shown)


def test_plural_labels_follow_the_catalogue() -> None:
    de = Language.of("de")
    assert de.n_("{n} customer owes something.", "{n} customers owe something.", 1) == "{n} Kunde schuldet etwas."
    assert de.n_("{n} customer owes something.", "{n} customers owe something.", 3) == "{n} Kunden schulden etwas."
    en = Language.of("en")
    assert en.n_("{n} customer owes something.", "{n} customers owe something.", 1) == "{n} customer owes something."


def test_swiss_amounts_are_grouped_by_threes() -> None:
    """Babel's pattern formatting wrote 1234567.89 ungrouped and 1234567'890.00 for de_CH."""
    assert Formats("de_CH", "CHF").amount("1234567.89") == "1'234'567.89"
    assert Formats("de_CH", "CHF").amount("-9999999999.99") == "-9'999'999'999.99"
    assert Formats("de_DE", "EUR").amount("-1234.5") == "-1.234,50"
    assert Formats("ja_JP", "JPY").amount("1234567") == "1,234,567"
