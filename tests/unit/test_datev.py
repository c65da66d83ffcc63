"""DATEV rows from journal lines: whatever the entry, importing the rows as DATEV does gives the entry back."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.datev import NO_AUTOMATIC, Row, _fold, _Leg, _rows
from ledger.domain import Account
from ledger.errors import Unprocessable
from ledger.money import vat_from_gross


def account(n: int, number: str, type_: str, role: str | None, rate: str | None) -> Account:
    return Account(n, number, number, type_, role, Decimal(rate) if rate else None, None, True, role == "AR")  # type: ignore[arg-type]


AR = account(1, "1400", "asset", "AR", None)
BANK = account(2, "1200", "asset", "BANK", None)
REV = {
    Decimal(19): account(3, "8400", "revenue", "REV_19", "19"),
    Decimal(7): account(4, "8300", "revenue", "REV_7", "7"),
}
RED19 = account(7, "8720", "revenue", "RED_19", "19")
VAT = {
    Decimal(19): account(5, "1776", "liability", "VAT_19", "19"),
    Decimal(7): account(6, "1771", "liability", "VAT_7", "7"),
}
KEYS = {"3": Decimal(19), "2": Decimal(7)}


def datev_import(rows: list[Row], automatic: bool) -> dict[str, int]:
    """Debit - credit per account as DATEV books the rows: VAT split out of gross rows on taxed accounts."""
    net: dict[str, int] = defaultdict(int)
    for r in rows:
        assert r.amount > 0
        sign = 1 if r.debit_konto else -1
        net[r.konto.number] += sign * r.amount
        rate = r.gegenkonto.vat_rate if r.gegenkonto.role and not r.gegenkonto.role.startswith("VAT_") else None
        split = bool(rate) and ((automatic and r.key == "") or KEYS.get(r.key) == rate)
        tax = vat_from_gross(r.amount, rate) if split and rate else 0
        if tax:
            net[VAT[rate or Decimal(0)].number] -= sign * tax
        net[r.gegenkonto.number] -= sign * (r.amount - tax)
    return {k: v for k, v in net.items() if v}


def books(legs: list[_Leg]) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[leg.account.number] += leg.amount if leg.debit else -leg.amount
    return {k: v for k, v in net.items() if v}


# one taxed part: (rate, gross, how far the booked VAT is off DATEV's VAT on the gross: 0, or a cent either way)
parts = st.lists(
    st.tuples(st.sampled_from([Decimal(19), Decimal(7)]), st.integers(2, 10**7), st.sampled_from([0, 0, 0, 1, -1])),
    min_size=1,
    max_size=4,
)


@given(
    parts=parts,
    payers=st.integers(1, 3),
    mirrored=st.booleans(),
    automatic=st.booleans(),
    untaxed=st.booleans(),
    transfer=st.sampled_from([None, "first", "last"]),
)
def test_datev_gets_every_entry_back_to_the_cent(
    parts: list[tuple[Decimal, int, int]],
    payers: int,
    mirrored: bool,
    automatic: bool,
    untaxed: bool,
    transfer: str | None,
) -> None:
    """Invoices (or, mirrored, credit notes) with several rates, VAT exact or a cent off, one or more receivable
    lines, plus revenue booked without VAT, and a credit moved between two customers on the receivables account:
    the rows import to exactly the lines' balances, and no row has its Konto as Gegenkonto."""
    legs: list[_Leg] = []
    for rate, gross, off in parts:
        vat = vat_from_gross(gross, rate) + off
        if not 0 < vat < gross:
            vat = vat_from_gross(gross, rate)
        legs.append(_Leg(REV[rate], mirrored, gross - vat, None))
        if vat:
            legs.append(_Leg(VAT[rate], mirrored, vat, None))
    if untaxed:
        legs.append(_Leg(REV[Decimal(19)], mirrored, 500, None))
    total = sum(leg.amount for leg in legs)
    shares = [total // payers] * (payers - 1)
    for n, share in enumerate([*shares, total - sum(shares)]):
        if share:  # a journal line is never zero (a total of 2 cents shared by 3 payers leaves some without)
            legs.append(_Leg(AR if n else BANK, not mirrored, share, f"C-{n}" if n else None))
    moved = [_Leg(AR, True, 5000, "C-8"), _Leg(AR, False, 5000, "C-9")]
    legs = {None: legs, "first": moved + legs, "last": legs + moved}[transfer]
    folded = _fold(legs, automatic)
    rows = _rows(folded, 1)
    assert datev_import(rows, automatic) == books(legs)
    assert [r for r in rows if r.konto.number == r.gegenkonto.number] == []
    if payers == 1 and not untaxed and not transfer:
        # one payer: each rate whose VAT is DATEV's is a single gross row (no VAT row for it)
        exact = {rate for rate, gross, off in parts if len([p for p in parts if p[0] == rate]) == 1 and off == 0}
        vat_rows = {r.gegenkonto.number for r in rows if r.gegenkonto.role and r.gegenkonto.role.startswith("VAT_")}
        assert not vat_rows & {VAT[rate].number for rate in exact}


def test_an_untaxed_booking_on_a_taxed_account_turns_the_automatic_off() -> None:
    legs = [_Leg(BANK, True, 5000, None), _Leg(REV[Decimal(19)], False, 5000, None)]
    (row,) = _rows(_fold(legs, automatic=True), 1)
    assert (row.konto, row.gegenkonto, row.key, row.debit_konto) == (BANK, REV[Decimal(19)], NO_AUTOMATIC, True)
    (row,) = _rows(_fold(legs, automatic=False), 1)
    assert row.key == ""


def test_a_taxed_gross_against_another_taxed_account_is_refused() -> None:
    """Dr sales deductions 19 % + VAT / Cr revenue 19 % + VAT: DATEV computes the VAT of one account per row."""
    legs = [_Leg(RED19, True, 1000, None), _Leg(VAT[Decimal(19)], True, 190, None),
            _Leg(REV[Decimal(19)], False, 1000, None), _Leg(VAT[Decimal(19)], False, 190, None)]  # fmt: skip
    with pytest.raises(Unprocessable) as refused:
        _rows(_fold(legs, automatic=True), 42)
    assert refused.value.code == "datev_entry_unrepresentable"
    assert "entry 42" in refused.value.detail


def test_a_credit_moved_between_two_customers_is_no_datev_row() -> None:
    """QA14 #2: Dr 1400 (C-2) / Cr 1400 (C-3) moves nothing in DATEV (customers are Zusatzinformation on the
    collective account), and DATEV refuses Konto = Gegenkonto: no row, also for two accounts of one DATEV number."""
    assert _rows(_fold([_Leg(AR, True, 5000, "C-2"), _Leg(AR, False, 5000, "C-3")], automatic=True), 1) == []
    mixed = [_Leg(AR, True, 5000, "C-2"), _Leg(BANK, True, 1000, None), _Leg(AR, False, 6000, "C-3")]
    (row,) = _rows(_fold(mixed, automatic=True), 1)
    assert (row.amount, row.konto, row.gegenkonto, row.customer) == (1000, BANK, AR, "C-3")
    twin = replace(account(9, "1201", "asset", None, None), alt_number="1200")
    assert _rows(_fold([_Leg(BANK, True, 700, None), _Leg(twin, False, 700, None)], automatic=True), 1) == []
