"""ledger.textsafe: identifiers in (ASCII digits only), text out (no formulas, no escape sequences)."""

from __future__ import annotations

import csv
import io
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.textsafe import ascii_digits, cell, csv_writer, looks_like_formula, parse_ascii_int, terminal


@pytest.mark.parametrize("text", ["=1+1", "+SUM(A1)", "-1+1", "@SUM(1)", "\t=1", "\r=1", "\n=1", "-", "+", "=", "@"])
def test_formula_like_text_gets_an_apostrophe(text: str) -> None:
    assert looks_like_formula(text)
    assert cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-12.50", "-3", "12.50", "0", "Bank", "", "'=1", " =1", "Revenue 19 %"])
def test_numbers_and_plain_text_stay_as_they_are(text: str) -> None:
    assert cell(text) == text


def test_none_is_an_empty_cell() -> None:
    assert cell(None) == ""


@given(st.text())
def test_no_cell_starts_a_formula(text: str) -> None:
    assert not looks_like_formula(cell(text))


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"])), min_size=1, max_size=5))
def test_csv_rows_read_back_whole(row: list[str]) -> None:
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(row)
    writer.writerow(["after"])
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert back == [row, ["after"]]


def test_terminal_escapes_control_characters_only() -> None:
    assert terminal("Bank\x1b[2K\x1b]0;pwned\x07") == "Bank\\x1b[2K\\x1b]0;pwned\\x07"
    assert terminal("a\rb\nc\u202ed\u2028") == "a\\x0db\\x0ac\\u202ed\\u2028"
    assert terminal("Müller Versand GmbH, 1.234,50 €\xa0x") == "Müller Versand GmbH, 1.234,50 €\xa0x"


@given(st.text())
def test_terminal_output_holds_no_control_character(text: str) -> None:
    categories = {unicodedata.category(ch) for ch in terminal(text)}
    assert not {c for c in categories if c.startswith("C") or c in ("Zl", "Zp")}


@pytest.mark.parametrize("text", ["\u00b2", "\u0663", "1\uff11", "", "-1", " 1", "1" * 19])
def test_identifiers_take_ascii_digits_only(text: str) -> None:
    assert not ascii_digits(text)
    assert parse_ascii_int(text) is None


def test_ascii_identifiers_parse() -> None:
    assert parse_ascii_int("0042") == 42
    assert parse_ascii_int("1" * 18) == int("1" * 18)
    assert ascii_digits("12345", length_max=4) is False
