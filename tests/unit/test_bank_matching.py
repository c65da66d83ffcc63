"""What a booking of a bank statement line records of it, without a database (payments.bank_matching)."""

from __future__ import annotations

import re
from datetime import date

from payments.bank_matching import _document_ref, _line_metadata, _line_ref, _party, _payment_details
from payments.camt import Line, StatementKey

KEY = StatementKey("DE89370400440532013000", "2026-03", date(2026, 3, 31))


def line(detail: int = 0, counterparty: str = "Erika Mustermann", iban: str = "DE02120300000000202051") -> Line:
    return Line(KEY, 4, detail, 11900, True, date(2026, 3, 30), "REF-1", "INV-7", counterparty, iban)


def test_a_line_and_a_payment_of_a_split_batch_entry_are_named_apart() -> None:
    assert _line_ref(line()) == "DE89370400440532013000/2026-03/2026-03-31/4"
    assert _line_ref(line(detail=2)) == "DE89370400440532013000/2026-03/2026-03-31/4.2"
    assert _payment_details(line(detail=2)) == {
        "method": "BANK_TRANSFER",
        "statement": KEY.ref,
        "entry": 4,
        "payment": 2,
    }
    assert "payment" not in _payment_details(line())


def test_the_document_reference_is_short_unique_per_line_and_fits_datev() -> None:
    first, second = _document_ref(line()), _document_ref(line(detail=1))
    assert first != second
    assert all(re.fullmatch(r"BANK-20260330-[0-9a-f]{12}", ref) for ref in (first, second))
    assert len(first) <= 32


def test_the_counterparty_and_the_metadata_name_what_is_given() -> None:
    assert _party(line()) == "Erika Mustermann (DE02120300000000202051)"
    assert _party(line(iban="")) == "Erika Mustermann"
    assert _party(line(counterparty="")) == "DE02120300000000202051"
    assert _line_metadata(line(iban="")) == {
        "bank_statement": KEY.ref,
        "bank_line": "4",
        "bank_reference": "REF-1",
        "counterparty_name": "Erika Mustermann",
    }
