"""What a settlement row means for the ledger, decided without a database (payments/settlement_rules.py)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from ledger.domain import Account, Side
from payments.settlement import content_sha256
from payments.settlement_parse import Report, Row
from payments.settlement_rules import (
    Tally,
    booked_before,
    booking_text,
    capture_finding,
    fees_total,
    psp_lines,
    refund_finding,
    reversal_finding,
    rule_of,
    settled_before,
)


def row(line_no: int, type_: str, amount: int, fee: int = 0, transaction_id: str = "T-1") -> Row:
    return Row(line_no, "S-9", date(2026, 11, 2), transaction_id, "", type_, "P01-1", "text", amount, fee)


def account(number: str) -> Account:
    return Account(int(number), number, number, "asset", None, None, None, True, False)


PSP, TRANSIT = account("1210"), account("1360")


@pytest.mark.parametrize(
    ("type_", "amount", "fee", "rule"),
    [
        ("Capture", 0, 0, "empty"),
        ("Capture", 1000, -59, "Capture"),
        ("Chargeback", -1000, 0, "chargeback"),
        ("A-to-z Guarantee Claim", -500, 0, "chargeback"),
        ("Transfer", -2554, 0, "Transfer"),
        ("Authorization", -5, 0, "Authorization"),
        ("Adjustment", 0, -10, "unclassified"),  # a fee alone is not empty
    ],
)
def test_each_row_follows_one_rule(type_: str, amount: int, fee: int, rule: str) -> None:
    assert rule_of(row(1, type_, amount, fee)) == rule


def test_a_capture_is_matched_only_when_kontor_knows_it_open_and_unsettled() -> None:
    capture = row(7, "Capture", 1000)
    assert capture_finding(capture, "Captured", None) is None
    assert capture_finding(capture, "Authorized", None) is None  # captured at Amazon: the row books it
    assert capture_finding(capture, None, None) == ("unknown_capture", "capture T-1 is not in the ledger")
    assert capture_finding(capture, "Declined", None) == ("unknown_capture", "capture T-1 is Declined in the ledger")
    assert capture_finding(capture, "Captured", "S-1") == ("already_settled", "capture T-1 was settled before, in S-1")


def test_a_refund_declined_or_unknown_is_an_exception() -> None:
    refund = row(8, "Refund", -500)
    assert refund_finding(refund, "Refunded", None) is None
    assert refund_finding(refund, None, None) == ("unknown_refund", "refund T-1 is not in the ledger")
    assert refund_finding(refund, "Declined", None) == (
        "unknown_refund",
        "refund T-1 is not in the ledger (Kontor saw it declined)",
    )
    assert refund_finding(refund, "Refunded", "S-1") == settled_before(refund, "refund", "S-1")


def test_a_chargeback_is_paid_back_once() -> None:
    reversal = row(9, "Chargeback", 1000)
    assert reversal_finding(reversal, True, None) is None
    assert reversal_finding(reversal, False, None) == ("unknown_reversal", "chargeback T-1 is not in the ledger")
    assert reversal_finding(reversal, True, "S-1") == (
        "unknown_reversal",
        "chargeback T-1 was paid back before, in S-1",
    )


def test_a_row_settled_before_parks_its_net_and_keeps_its_fee_out_of_the_fees() -> None:
    tally = Tally("EUR")
    capture, payout = row(7, "Capture", 1000, -59), row(8, "Transfer", -941, 0, "")
    tally.exception(capture, settled_before(capture, "capture", "S-1"))
    tally.exception(payout, booked_before(payout, "EUR", "S-1"))
    assert [(d.line_no, d.kind, d.amount) for d in tally.exceptions] == [
        (7, "already_settled", 941),
        (8, "already_settled", -941),
    ]
    assert tally.exceptions[1].description == (
        "Transfer row of -9.41 on 2026-11-02 (text) was booked before, in settlement S-1"
    )
    assert tally.fees_parked == {7, 8}
    assert tally.outcome == {7: "exception", 8: "exception"}
    other = row(9, "Capture", 2000, -100)
    assert fees_total([capture, payout, other, row(10, "Authorization", -5, -1)], tally.fees_parked) == -106


def test_other_exceptions_park_the_amount_and_book_the_fee() -> None:
    tally = Tally("EUR")
    capture = row(7, "Capture", 1000, -59)
    found = capture_finding(capture, None, None)
    assert found is not None
    tally.exception(capture, found)
    assert (tally.exceptions[0].amount, tally.fees_parked) == (1000, set())
    assert fees_total([capture], tally.fees_parked) == -59


def test_an_amount_that_differs_parks_the_difference() -> None:
    tally = Tally("EUR")
    tally.compare(row(7, "Capture", 1000), "capture", 1000, "matched")
    tally.compare(row(8, "Refund", -600, transaction_id="R-1"), "refund", -500, "booked")
    assert tally.outcome == {7: "matched", 8: "exception"}
    [mismatch] = tally.exceptions
    assert (mismatch.kind, mismatch.amount) == ("amount_mismatch", -100)
    assert mismatch.description == "refund R-1: the report says -6.00, the ledger -5.00"


@pytest.mark.parametrize(
    ("amount", "debit", "credit"),
    [(-2554, TRANSIT, PSP), (2554, PSP, TRANSIT)],  # a payout; a balance repayment Amazon collects
)
def test_money_between_psp_and_another_account_goes_by_its_sign(amount: int, debit: Account, credit: Account) -> None:
    lines = psp_lines(amount, PSP, TRANSIT, "EUR")
    assert [(line.account, line.side, line.amount_minor) for line in lines] == [
        (debit, Side.DEBIT, 2554),
        (credit, Side.CREDIT, 2554),
    ]


def test_booking_texts() -> None:
    assert booking_text("Transfer", -1, "S-9") == "Amazon Pay payout, settlement S-9"
    assert booking_text("Transfer", 1, "S-9") == "Amazon Pay balance repayment, settlement S-9"
    assert booking_text("Reserve", -1, "S-9") == "Amazon Pay reserve held, settlement S-9"
    assert booking_text("Reserve", 1, "S-9") == "Amazon Pay reserve released, settlement S-9"
    assert booking_text("fees", -1, "S-9") == "Amazon Pay fees, settlement S-9"


def test_the_summary_counts_outcomes_and_totals_per_type() -> None:
    rows = [row(7, "Capture", 11900, -261), row(8, "Reserve", -595, 0, ""), row(9, "Transfer", -11044, 0, "")]
    tally = Tally("EUR")
    tally.outcome.update({8: "reserve", 9: "payout"})
    tally.entries += [3, 4, 5]
    report = Report("SELLER", "S-9", datetime(2026, 11, 1), datetime(2026, 11, 2), rows)
    out = tally.summary(report, matched=1, exception_ids=[])
    assert out.outcomes == {"matched": 1, "payout": 1, "reserve": 1}
    assert out.totals == {"Capture": "119.00", "Reserve": "-5.95", "Transfer": "-110.44", "fees": "-2.61"}
    assert (out.rows, out.entries, out.exception_count, out.exceptions) == (3, [3, 4, 5], 0, [])


def test_a_settlement_is_identified_by_what_it_says_not_by_its_settlement_id() -> None:
    rows = [row(7, "Capture", 1000, -59), row(8, "Transfer", -941, 0, "")]
    report = Report("SELLER", "S-9", datetime(2026, 11, 1), datetime(2026, 11, 2), rows)
    renamed = report._replace(settlement_id="S-10", rows=[r._replace(settlement_id="S-10") for r in rows])
    assert content_sha256(renamed) == content_sha256(report)
    edited = report._replace(rows=[rows[0]._replace(fee=-60), rows[1]])
    assert content_sha256(edited) != content_sha256(report)
