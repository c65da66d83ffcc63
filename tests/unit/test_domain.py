"""Entry validation, reversal, content hashing and periods: the pure rules behind every posting."""

from datetime import date
from decimal import Decimal

import pytest

from ledger.charts import CHARTS, chart_template, default_vat_rates
from ledger.domain import (
    Account,
    Business,
    EntryDraft,
    LineDraft,
    Side,
    check_balanced,
    check_customers,
    content_sha256,
    link_sha256,
    month_end,
    parse_period,
    reversal_of,
)
from ledger.errors import Conflict, Unprocessable
from ledger.money import imbalance
from ledger.posting import draft_entries, draft_entry
from ledger.schemas import EntryIn, LineIn

BUSINESS = Business(
    merchant_id=7, code=1001, country="DE", currency="EUR", chart="skr03", vat_rates=(Decimal(19), Decimal(7))
)


def account(
    number: str, type_: str = "asset", *, customer_ledger: bool = False, account_id: int | None = None
) -> Account:
    return Account(
        account_id=account_id or int(number),
        number=number,
        name=f"acct {number}",
        type=type_,  # type: ignore[arg-type]
        role=None,
        vat_rate=None,
        alt_number=None,
        allow_negative=True,
        customer_ledger=customer_ledger,
    )


AR = account("1400", customer_ledger=True)
REV = account("8400", "revenue")
VAT = account("1776", "liability")
BANK = account("1200")
ACCOUNTS = {a.number: a for a in (AR, REV, VAT, BANK)}


def line(acct: Account, side: Side, minor: int, currency: str = "EUR", customer: str | None = None) -> LineDraft:
    return LineDraft(account=acct, side=side, amount_minor=minor, currency=currency, customer=customer)


def test_balanced_entry_passes() -> None:
    check_balanced([line(AR, Side.DEBIT, 11900), line(REV, Side.CREDIT, 10000), line(VAT, Side.CREDIT, 1900)])


def test_unbalanced_entry_names_the_currency_and_difference() -> None:
    with pytest.raises(Unprocessable) as exc:
        check_balanced([line(AR, Side.DEBIT, 11900), line(REV, Side.CREDIT, 10000)])
    assert exc.value.code == "entry_unbalanced"
    assert "EUR debits exceed credits by 19.00" in exc.value.detail


def test_an_excess_of_credits_is_named_as_such_with_a_positive_amount() -> None:
    with pytest.raises(Unprocessable) as exc:
        check_balanced([line(AR, Side.DEBIT, 990), line(REV, Side.CREDIT, 1000)])
    assert "EUR credits exceed debits by 0.10" in exc.value.detail
    assert "-" not in exc.value.detail


@pytest.mark.parametrize(
    ("debit", "credit", "currency", "text"),
    [
        (100, 110, "EUR", "credits exceed debits by 0.10"),
        (110, 100, "EUR", "debits exceed credits by 0.10"),
        (5, 5, "EUR", ""),
        (1, 501, "JPY", "credits exceed debits by 500"),
    ],
)
def test_imbalance_wording(debit: int, credit: int, currency: str, text: str) -> None:
    assert imbalance(debit, credit, currency) == text


def test_fx_entry_must_balance_in_each_currency() -> None:
    check_balanced(
        [
            line(BANK, Side.DEBIT, 1000, "USD"),
            line(BANK, Side.CREDIT, 1000, "USD"),
            line(BANK, Side.DEBIT, 900),
            line(REV, Side.CREDIT, 900),
        ]
    )
    with pytest.raises(Unprocessable, match="USD"):
        # balanced in total minor units (1000 + 900 = 1900) but not per currency
        check_balanced(
            [
                line(BANK, Side.DEBIT, 1000, "USD"),
                line(REV, Side.CREDIT, 900, "USD"),
                line(BANK, Side.DEBIT, 900),
                line(REV, Side.CREDIT, 1000),
            ]
        )


def test_an_entry_needs_two_lines_and_at_most_the_limit() -> None:
    with pytest.raises(Unprocessable, match="at least two"):
        check_balanced([line(AR, Side.DEBIT, 1)])
    many = [line(BANK, Side.DEBIT, 1), line(BANK, Side.CREDIT, 1)] * 51
    with pytest.raises(Unprocessable, match="at most 100"):
        check_balanced(many)


def test_customer_ledger_lines_need_a_customer_and_others_refuse_one() -> None:
    with pytest.raises(Unprocessable) as exc:
        check_customers([line(AR, Side.DEBIT, 100), line(REV, Side.CREDIT, 100, customer="C-1")])
    assert [e.field for e in exc.value.errors] == ["lines[0].customer", "lines[1].customer"]


def test_draft_entry_reports_every_field_with_its_path() -> None:
    entry = EntryIn(
        effective_date=date(2026, 11, 27),
        description="x",
        lines=[
            LineIn(account="9999", debit="1.00"),
            LineIn(account="8400", credit="1.001"),
            LineIn(account="1200", debit="1.00", credit="1.00"),
            LineIn(account="1200", debit="1.00", currency="XAU"),
        ],
    )
    with pytest.raises(Unprocessable) as exc:
        draft_entry(entry, BUSINESS, ACCOUNTS)
    fields = {e.field: e.message for e in exc.value.errors}
    assert fields.keys() == {"lines[0].account", "lines[1].credit", "lines[2]", "lines[3].currency"}
    assert "more than 2 decimals" in fields["lines[1].credit"]


def test_draft_entry_defaults_to_the_business_currency() -> None:
    entry = EntryIn(
        effective_date=date(2026, 11, 27),
        description="sale",
        reference="order-42",
        metadata={"channel": "web"},
        lines=[
            LineIn(account="1400", customer="C-1", debit="119.00"),
            LineIn(account="8400", credit="100.00"),
            LineIn(account="1776", credit="19.00"),
        ],
    )
    draft = draft_entry(entry, BUSINESS, ACCOUNTS)
    assert [(ln.account.number, ln.side, ln.amount_minor, ln.currency) for ln in draft.lines] == [
        ("1400", Side.DEBIT, 11900, "EUR"),
        ("8400", Side.CREDIT, 10000, "EUR"),
        ("1776", Side.CREDIT, 1900, "EUR"),
    ]
    assert draft.reference == "order-42"
    assert draft.metadata == {"channel": "web"}


def test_batch_errors_carry_the_entry_index() -> None:
    good = EntryIn(
        effective_date=date(2026, 1, 1),
        description="ok",
        lines=[LineIn(account="1200", debit="1"), LineIn(account="8400", credit="1")],
    )
    bad = EntryIn(
        effective_date=date(2026, 1, 1),
        description="bad",
        lines=[LineIn(account="1200", debit="2"), LineIn(account="8400", credit="1")],
    )
    assert len(draft_entries([good, good], BUSINESS, ACCOUNTS)) == 2
    with pytest.raises(Unprocessable) as exc:
        draft_entries([good, bad, good], BUSINESS, ACCOUNTS)
    assert exc.value.code == "batch_invalid"
    assert [e.field for e in exc.value.errors] == ["entries[1].lines"]


def sale() -> EntryDraft:
    return EntryDraft(
        effective_date=date(2026, 11, 27),
        description="sale",
        reference="o-1",
        metadata={"b": "2", "a": "1"},
        lines=(
            line(AR, Side.DEBIT, 11900, customer="C-1"),
            line(REV, Side.CREDIT, 10000),
            line(VAT, Side.CREDIT, 1900),
        ),
    )


def test_reversal_mirrors_every_line_and_links_back() -> None:
    original = sale()
    rev = reversal_of(
        original,
        entry_id=5,
        effective_date=date(2026, 12, 1),
        today=date(2026, 12, 1),
        description=None,
        reversed_already=False,
        is_reversal=False,
    )
    assert rev.reverses == 5
    assert [(ln.side, ln.amount_minor, ln.customer) for ln in rev.lines] == [
        (Side.CREDIT, 11900, "C-1"),
        (Side.DEBIT, 10000, None),
        (Side.DEBIT, 1900, None),
    ]
    assert rev.description.startswith("Reversal of entry 5")
    check_balanced(rev.lines)


def test_reversal_only_once_and_never_of_a_reversal() -> None:
    with pytest.raises(Conflict, match="already been reversed"):
        reversal_of(
            sale(),
            entry_id=5,
            effective_date=date(2026, 12, 1),
            today=date(2026, 12, 1),
            description=None,
            reversed_already=True,
            is_reversal=False,
        )
    with pytest.raises(Conflict, match="itself a reversal"):
        reversal_of(
            sale(),
            entry_id=5,
            effective_date=date(2026, 12, 1),
            today=date(2026, 12, 1),
            description=None,
            reversed_already=False,
            is_reversal=True,
        )


def test_content_hash_is_canonical_and_covers_every_field() -> None:
    base = content_sha256(7, 1001, sale())
    variants = [
        EntryDraft(
            effective_date=date(2026, 11, 28),
            description="sale",
            reference="o-1",
            metadata={"a": "1", "b": "2"},
            lines=sale().lines,
        ),
        EntryDraft(
            effective_date=date(2026, 11, 27),
            description="sale!",
            reference="o-1",
            metadata={"a": "1", "b": "2"},
            lines=sale().lines,
        ),
        EntryDraft(
            effective_date=date(2026, 11, 27),
            description="sale",
            reference="o-1",
            metadata={"a": "1"},
            lines=sale().lines,
        ),
        EntryDraft(
            effective_date=date(2026, 11, 27),
            description="sale",
            reference="o-1",
            metadata={"a": "1", "b": "2"},
            lines=(line(AR, Side.DEBIT, 11900, customer="C-2"), *sale().lines[1:]),
        ),
    ]
    reordered = EntryDraft(
        effective_date=date(2026, 11, 27),
        description="sale",
        reference="o-1",
        metadata={"a": "1", "b": "2"},
        lines=sale().lines,
    )
    assert content_sha256(7, 1001, reordered) == base
    assert content_sha256(8, 1001, sale()) != base
    assert all(content_sha256(7, 1001, v) != base for v in variants)


def test_links_chain_on_their_predecessor() -> None:
    first = link_sha256(bytes(32), 1, 10, b"a" * 32)
    assert link_sha256(first, 2, 11, b"b" * 32) != link_sha256(bytes(32), 2, 11, b"b" * 32)
    assert len(first) == 32


def test_periods() -> None:
    assert parse_period("2026-02") == date(2026, 2, 1)
    assert month_end(date(2024, 2, 1)) == date(2024, 2, 29)
    for bad in ("2026-13", "2026-1", "26-01", "2026/01", "x"):
        with pytest.raises(Unprocessable):
            parse_period(bad)


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("country", ["DE", "FR", "IE", "GB", "DK", "XX"])
def test_chart_template_numbers_and_roles_are_unique(chart: str, country: str) -> None:
    accounts = chart_template(chart, default_vat_rates(country))
    assert len({a.number for a in accounts}) == len(accounts)
    assert len({a.role for a in accounts}) == len(accounts)
    assert [a.role for a in accounts if a.customer_ledger] == ["AR"]


def test_german_template_matches_accounting_md() -> None:
    skr03 = {a.role: a.number for a in chart_template("skr03", default_vat_rates("DE"))}
    skr04 = {a.role: a.number for a in chart_template("skr04", default_vat_rates("DE"))}
    expected = {
        "BANK": ("1200", "1800"),
        "TRANSIT": ("1360", "1460"),
        "AR": ("1400", "1200"),
        "VAT_19": ("1776", "3806"),
        "VAT_7": ("1771", "3801"),
        "REV_19": ("8400", "4400"),
        "REV_7": ("8300", "4300"),
        "RED_19": ("8720", "4720"),
        "RED_7": ("8710", "4710"),
        "PSP_FEE": ("4970", "6855"),
        "DUN_FEE_INC": ("2700", "4830"),
        "INT_INC": ("2650", "7100"),
        "LOSS_19": ("2406", "6936"),
        "LOSS_7": ("2401", "6931"),
        "LOSS0": ("2400", "6930"),
        "RECOV": ("2732", "4925"),
        "SUSPENSE": ("1590", "1370"),
    }
    for role, (n03, n04) in expected.items():
        assert (skr03[role], skr04[role]) == (n03, n04), role


def test_at_most_four_positive_rates() -> None:
    with pytest.raises(ValueError, match="at most 4"):
        chart_template("skr03", tuple(Decimal(r) for r in (1, 2, 3, 4, 5)))
