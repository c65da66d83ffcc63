"""The document routes' replies without a database (payments.document_replies)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.domain import Business
from ledger.errors import Conflict, Unprocessable
from payments.document_replies import document_response, iso_or_none, not_before, rates_json, replay_or_refuse

BUSINESS = Business(merchant_id=1, code=1001, country="DE", currency="EUR", chart="skr03", vat_rates=(Decimal(19),))


def test_an_identical_request_gets_the_stored_reply_and_another_body_is_refused() -> None:
    stored = {"request_sha256": b"\x01" * 32, "response": {"reference": "INV-1"}}
    assert replay_or_refuse(None, b"\x01" * 32, "invoice INV-1") is None
    assert replay_or_refuse(stored, b"\x01" * 32, "invoice INV-1") == {"reference": "INV-1"}
    with pytest.raises(Conflict) as refused:
        replay_or_refuse(stored, b"\x02" * 32, "invoice INV-1")
    assert refused.value.code == "reference_reused"


def test_a_document_dated_before_the_one_it_follows_is_refused_naming_the_field() -> None:
    not_before(date(2026, 3, 2), date(2026, 3, 2), "invoice_date", "the order date")  # the same day is fine
    with pytest.raises(Unprocessable) as refused:
        not_before(date(2026, 3, 1), date(2026, 3, 2), "invoice_date", "the order date")
    assert refused.value.code == "date_before_document"
    assert [e.field for e in refused.value.errors] == ["invoice_date"]


def test_a_credit_note_offsets_what_was_not_refunded_and_an_invoice_nothing() -> None:
    credit = document_response(BUSINESS, "return", "CN-1", "o-1", date(2026, 3, 2), 11900, 7, refunded=1900)
    assert (credit["gross_amount"], credit["refunded"], credit["offset"]) == ("119.00", "19.00", "100.00")
    invoice = document_response(BUSINESS, "invoice", "INV-1", "o-1", date(2026, 3, 2), 11900, None)
    assert (invoice["offset"], invoice["entry_id"], invoice["refunds"]) == ("0.00", None, [])


def test_rates_and_dates_as_json() -> None:
    assert rates_json({Decimal("19.00"): 11900, Decimal("7.0"): 535}) == {"19": 11900, "7": 535}
    assert (iso_or_none(None), iso_or_none(date(2026, 3, 2))) == (None, "2026-03-02")
