"""The pure parts of the desk package, without a database: the ageing buckets and the months the charts draw
(desk.find.figures), the finders' keyset cursors and search prefixes (desk.find.cursors, desk.find.customers),
and what the pages check before they read anything (desk.web.common, desk.web.signin, desk.errorpages)."""

from __future__ import annotations

from datetime import date

import pytest

from desk.errorpages import _field_label
from desk.find.cursors import decode_cursor, encode_cursor
from desk.find.customers import SEARCH_MAX, prefix_pattern
from desk.find.figures import AGEING_BUCKETS, _bucket, _months
from desk.formats import signed_minor
from desk.i18n import Language
from desk.web.common import path_id
from desk.web.signin import next_page_of
from ledger.errors import BadRequest, NotFound


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (-400, "not_due"),
        (-1, "not_due"),
        (0, "days_0_30"),  # due today: overdue by zero days
        (30, "days_0_30"),
        (31, "days_31_60"),
        (60, "days_31_60"),
        (61, "days_61_90"),
        (90, "days_61_90"),
        (91, "days_over_90"),
        (10_000, "days_over_90"),
    ],
)
def test_an_item_falls_in_the_bucket_of_its_days_past_due(days: int, bucket: str) -> None:
    assert _bucket(days) == bucket
    assert bucket in AGEING_BUCKETS


def test_the_months_of_a_range_start_on_the_first_and_cross_the_year() -> None:
    assert _months(date(2025, 11, 15), date(2026, 2, 1)) == [
        date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
    ]  # fmt: skip
    assert _months(date(2026, 3, 31), date(2026, 3, 31)) == [date(2026, 3, 1)]
    assert _months(date(2026, 4, 1), date(2026, 3, 31)) == []


def test_a_cursor_gives_back_its_values() -> None:
    cursor = encode_cursor("C-1", 42, date(2026, 1, 31))
    assert "=" not in cursor
    assert cursor.isascii()
    assert decode_cursor(cursor, str, int, date) == ["C-1", 42, date(2026, 1, 31)]


@pytest.mark.parametrize(
    ("cursor", "types"),
    [
        ("not base64!", (str,)),
        (encode_cursor("a", 1), (str,)),  # too many values
        (encode_cursor("a"), (int,)),  # a string where an id goes
        (encode_cursor(True), (int,)),  # JSON true is not an id
        (encode_cursor(2**63), (int,)),  # beyond the bigint it is compared with
        (encode_cursor("a\x00b"), (str,)),  # no text column holds a NUL
        (encode_cursor("x" * 201), (str,)),
        (encode_cursor("2026-13-01"), (date,)),
        (encode_cursor("0001-01-01"), (date,)),  # outside the dates an entry can have
    ],
)
def test_a_cursor_this_service_did_not_issue_is_refused(cursor: str, types: tuple[type, ...]) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor, *types)
    assert caught.value.code == "cursor_invalid"


def test_a_search_is_a_case_insensitive_prefix_with_its_wildcards_escaped() -> None:
    assert prefix_pattern(None) is None
    assert prefix_pattern("   ") is None
    assert prefix_pattern(" Müller ") == "müller%"
    assert prefix_pattern("50%_off\\") == "50\\%\\_off\\\\%"
    assert prefix_pattern("x" * SEARCH_MAX) == "x" * SEARCH_MAX + "%"
    with pytest.raises(BadRequest) as caught:
        prefix_pattern("x" * (SEARCH_MAX + 1))
    assert caught.value.code == "query_parameter_invalid"


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/ui/1001/journal?from=2026-01-01", True),
        ("/ui/", True),
        ("//evil.example/ui/", False),
        ("https://evil.example/ui/", False),
        ("/ui/\\evil.example", False),
        ("/api/v1/", False),
        ("", False),
    ],
)
def test_sign_in_sends_back_only_to_a_page_of_this_site(target: str, kept: bool) -> None:
    assert next_page_of(target) == (target if kept else "/ui/")


def test_an_id_in_a_path_is_a_positive_bigint_of_ascii_digits() -> None:
    assert path_id("1", "entry_not_found", "entry") == 1
    assert path_id("9223372036854775807", "entry_not_found", "entry") == 2**63 - 1
    for text in ("0", "-1", "9223372036854775808", "abc", "1e3", "\u0661", "", "12345678901234567890"):
        with pytest.raises(NotFound) as caught:
            path_id(text, "entry_not_found", "entry")
        assert caught.value.code == "entry_not_found", text


def test_a_signed_amount_of_the_api_in_minor_units() -> None:
    assert signed_minor("-5.00", "EUR") == -500
    assert signed_minor("0.00", "EUR") == 0
    assert signed_minor("1234.56", "EUR") == 123456
    assert signed_minor("-1500", "JPY") == -1500


def test_an_entry_field_is_named_as_the_form_numbers_its_lines() -> None:
    en = Language.of("en")
    assert _field_label(en, "lines[0].debit") == "Line 1, debit"
    assert _field_label(en, "lines[2]") == "Line 3"
    assert _field_label(en, "reference") == "reference"
