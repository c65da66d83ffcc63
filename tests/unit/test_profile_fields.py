"""The business profile's validation without a database (ledger.profile_fields): IBAN, BIC, VAT id, postcode,
and the letters' default language."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.domain import Business
from ledger.errors import Unprocessable
from ledger.profile_fields import AddressIn, BankIn, ProfileIn, default_language, validate

BUSINESS = Business(merchant_id=1, code=1001, country="DE", currency="EUR", chart="skr03", vat_rates=(Decimal(19),))


def profile(**changes: Any) -> ProfileIn:
    address = {"street": "Lindenweg 4", "postcode": "20095", "city": "Hamburg", "country": "DE"}
    bank = {"account_holder": "Muster GmbH", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX"}
    address.update(changes.pop("address", {}))
    bank.update(changes.pop("bank", {}))
    return ProfileIn(legal_name="Muster GmbH", address=AddressIn(**address), bank=BankIn(**bank), **changes)


def fields_refused(spec: ProfileIn) -> dict[str, str]:
    with pytest.raises(Unprocessable) as refused:
        validate(BUSINESS, spec)
    assert refused.value.code == "profile_invalid"
    return {e.field: e.message for e in refused.value.errors}


def test_a_valid_profile_is_stored_normalised() -> None:
    stored = validate(BUSINESS, profile(vat_id="de 136695976", address={"postcode": "20095"}))
    assert stored["bank"] == {
        "account_holder": "Muster GmbH",
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
        "bank_name": None,
    }
    assert stored["vat_id"] == "DE136695976"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"bank": {"iban": "DE89370400440532013001"}}, "bank.iban", "check digits"),
        ({"bank": {"iban": "DE8937040044053201300"}}, "bank.iban", "length or format"),
        ({"bank": {"bic": "COBA1EFF"}}, "bank.bic", "BIC"),
        ({"vat_id": "ATU13585627"}, "vat_id", "starts with DE"),
        ({"address": {"postcode": "2009"}}, "address.postcode", "not a postcode of DE"),
        ({"address": {"country": "XX"}}, "address.country", ""),
    ],
)
def test_each_wrong_field_is_named(changes: dict[str, Any], field: str, says: str) -> None:
    refused = fields_refused(profile(**changes))
    assert list(refused) == [field]
    assert says in refused[field]


def test_every_wrong_field_is_named_at_once() -> None:
    refused = fields_refused(profile(bank={"iban": "DE00"}, address={"postcode": "x"}, letter_language="fr"))
    assert set(refused) == {"bank.iban", "address.postcode", "letter_language"}


def test_a_dutch_postcode_is_upper_cased() -> None:
    nl = profile(address={"postcode": "1234 ab", "country": "NL", "city": "Amsterdam"})
    assert validate(BUSINESS, nl)["address"]["postcode"] == "1234 AB"  # type: ignore[index]


@pytest.mark.parametrize(("country", "language"), [("DE", "de"), ("AT", "de"), ("LU", "de"), ("FR", "en")])
def test_the_letters_language_follows_the_country(country: str, language: str) -> None:
    assert default_language(country) == language
