"""The business profile's fields and their validation; pure (no database), so tested without one.

Validation (422 `profile_invalid`, every error naming its field, nothing stored):
- IBAN: ISO 13616 — the country's length and format, and the mod-97 check digits; BIC: ISO 9362 (8 or 11
  characters, a real country); both through python-stdnum, a small pure-Python library of these standards.
- VAT id: for an EU country (and XI, Northern Ireland) the prefix must be the address country's VAT prefix
  (Greece: EL) and the number must pass that member state's format and check digits (python-stdnum's
  `stdnum.eu.vat`, which follows the rules VIES applies); CH (CHE, MWST) and GB likewise; other countries:
  2 letters of the country and 2 to 18 letters or digits.
- Postcode per country where the rule is simple (DE 5 digits, AT/CH/BE/DK/LU/NO 4, NL 1234 AB, PL 12-345, ...),
  otherwise 1 to 12 letters, digits, spaces or hyphens.
- Every text has a length range and no control characters.

The letter language defaults from the business code's country: DE, AT, CH, LI, LU → `de`, else `en`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from types import ModuleType
from typing import Annotated, Literal

import pycountry
from msgspec import Meta, Struct
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.ch import vat as ch_vat
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.gb import vat as gb_vat

from ledger.domain import Business
from ledger.errors import FieldError, Unprocessable

__all__ = [
    "GERMAN_COUNTRIES",
    "AddressIn",
    "BankIn",
    "ContactIn",
    "Language",
    "LogoOut",
    "ProfileIn",
    "ProfileOut",
    "RegisterIn",
    "default_language",
    "validate",
]

GERMAN_COUNTRIES = frozenset({"DE", "AT", "CH", "LI", "LU"})
Language = Literal["de", "en"]

# The wire types carry types only; every range and format is checked by `validate`, which answers 422 naming
# each field (a body that is not this shape at all is 400 `request_invalid`, like every other route).
Text = Annotated[str, Meta(max_length=2000)]


class AddressIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    street: Text  # street and house number
    postcode: Text
    city: Text
    country: Text  # ISO 3166-1 alpha-2


class RegisterIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    court: Text  # Registergericht, e.g. "Amtsgericht Hamburg"
    number: Text  # e.g. "HRB 123456"


class BankIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    account_holder: Text
    iban: Text
    bic: Text | None = None
    bank_name: Text | None = None


class ContactIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    phone: Text | None = None
    email: Text | None = None
    web: Text | None = None


class ProfileIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole profile (PUT replaces it). `letter_language` absent: from the business code's country."""

    legal_name: Text
    address: AddressIn
    bank: BankIn
    vat_id: Text | None = None
    tax_number: Text | None = None
    register: RegisterIn | None = None
    managing_directors: Text | None = None  # "Geschäftsführer" line of the footer, e.g. "Erika Muster, Max Muster"
    contact: ContactIn | None = None
    letter_language: Text | None = None


class LogoOut(Struct, kw_only=True):
    media_type: str
    bytes: int
    width: int
    height: int
    url: str


class ProfileOut(Struct, kw_only=True):
    business: int
    legal_name: str
    address: AddressIn
    bank: BankIn
    vat_id: str | None
    tax_number: str | None
    register: RegisterIn | None
    managing_directors: str | None
    contact: ContactIn | None
    letter_language: Language
    letter_language_default: bool  # true: taken from the business code's country
    logo: LogoOut | None
    updated_at: datetime


# --- validation ------------------------------------------------------------------------------------------
_POSTCODES = {
    "DE": r"[0-9]{5}",
    "AT": r"[0-9]{4}",
    "CH": r"[0-9]{4}",
    "LI": r"94[89][0-9]",
    "BE": r"[0-9]{4}",
    "DK": r"[0-9]{4}",
    "LU": r"(L-)?[0-9]{4}",
    "NO": r"[0-9]{4}",
    "NL": r"[1-9][0-9]{3} ?[A-Z]{2}",
    "FR": r"[0-9]{5}",
    "IT": r"[0-9]{5}",
    "ES": r"[0-9]{5}",
    "FI": r"[0-9]{5}",
    "PL": r"[0-9]{2}-[0-9]{3}",
    "CZ": r"[0-9]{3} ?[0-9]{2}",
    "SK": r"[0-9]{3} ?[0-9]{2}",
    "SE": r"[0-9]{3} ?[0-9]{2}",
    "PT": r"[0-9]{4}-[0-9]{3}",
    "IE": r"[A-Z][0-9][0-9W] ?[0-9A-Z]{4}",
    "GB": r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}",
    "US": r"[0-9]{5}(-[0-9]{4})?",
}
_POSTCODE_ANY = re.compile(r"[0-9A-Za-z][0-9A-Za-z -]{0,11}")
_VAT_PREFIX = {"GR": "EL"}  # Greece's VAT ids start with EL
_EU_VAT = {c.upper() for c in eu_vat.MEMBER_STATES}  # ISO codes, "gr" among them, and "xi"
_TAX_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z /.-]{0,29}")
_PHONE = re.compile(r"\+?[0-9][0-9 ()/-]{3,29}")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_WEB = re.compile(r"(https?://)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(/[A-Za-z0-9._~%/?#=&+-]*)?")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def text(self, field: str, value: str | None, low: int, high: int, *, required: bool = True) -> str | None:
        """`value` stripped, 1 line of `low`..`high` characters without control characters; None when absent."""
        if value is None or not value.strip():
            if required:
                self.fail(field, "required")
            return None
        clean = " ".join(value.split())
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in clean):
            self.fail(field, "control or unassigned characters are not allowed")
        elif not low <= len(clean) <= high:
            self.fail(field, f"{low} to {high} characters")
        return clean

    def pattern(self, field: str, value: str | None, regex: re.Pattern[str], what: str) -> None:
        if value is not None and regex.fullmatch(value) is None:
            self.fail(field, what)


def _country(check: _Checker, field: str, value: str) -> str | None:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code) or pycountry.countries.get(alpha_2=code) is None:
        check.fail(field, "an ISO 3166-1 alpha-2 country code, e.g. DE")
        return None
    return code


def _vat_id(check: _Checker, value: str, country: str | None) -> str:
    """The VAT id normalised (compact, or Switzerland's printed form); its errors go to `check`."""
    compact = re.sub(r"[\s.-]", "", value).upper()
    prefix = _VAT_PREFIX.get(country or "", country or "")
    normalise: ModuleType
    if country in ("CH", "LI") or compact.startswith("CHE"):
        rule, normalise = "a Swiss UID for VAT: CHE-123.456.789 MWST, with a valid check digit", ch_vat
    elif country == "GB" or compact.startswith("GB"):
        rule, normalise = "a UK VAT registration number: GB and 9 or 12 digits with valid check digits", gb_vat
    elif country in _EU_VAT or compact[:2] in _EU_VAT | {"EL"}:
        if country is not None and not compact.startswith(prefix):
            check.fail("vat_id", f"a VAT id of {country} starts with {prefix}")
            return compact
        rule, normalise = f"not a valid VAT id of {compact[:2]}: its format or check digits are wrong", eu_vat
    else:
        if country is not None and not re.fullmatch(re.escape(prefix) + r"[0-9A-Z]{2,18}", compact):
            check.fail("vat_id", f"a VAT id of {country}: {prefix} and 2 to 18 letters or digits")
        return compact
    try:
        number = str(normalise.validate(compact))
    except StdnumError:
        check.fail("vat_id", rule)
        return compact
    if normalise is ch_vat:
        return str(ch_vat.format(number))
    return number if normalise is eu_vat else "GB" + number.removeprefix("GB")


def _iban(check: _Checker, value: str) -> str:
    """The IBAN compact; a wrong length or format for its country is named before wrong check digits."""
    compact = stdnum_iban.compact(value)
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}", compact):
        check.fail("bank.iban", "not an IBAN: 2 letters, 2 check digits, then letters and digits")
        return compact
    try:
        return str(stdnum_iban.validate(compact))
    except StdnumError as exc:
        problem = exc
    if isinstance(problem, InvalidChecksum):  # the same number with right check digits shows what else is wrong
        try:
            stdnum_iban.validate(compact[:2] + stdnum_iban.calc_check_digits(compact) + compact[4:])
        except StdnumError as other:
            problem = other
    reason = {
        InvalidChecksum: "its check digits are wrong (ISO 13616 mod 97)",
        InvalidLength: "its length does not fit its country (ISO 13616)",
        InvalidFormat: "its length or format does not fit its country (ISO 13616)",
        InvalidComponent: "its country code or account number is not valid (ISO 13616)",
    }.get(type(problem), "not a valid IBAN (ISO 13616)")
    check.fail("bank.iban", reason)
    return compact


def _bic(check: _Checker, value: str) -> str:
    try:
        return str(stdnum_bic.validate(value))
    except StdnumError:
        check.fail("bank.bic", "a BIC (ISO 9362): 4 letters bank, 2 letters country, 2 location, optional 3 branch")
        return value.upper()


def validate(business: Business, spec: ProfileIn) -> dict[str, object]:
    """The profile as stored (normalised: IBAN compact, upper-case codes, single spaces), or 422
    `profile_invalid` listing every field that is wrong."""
    check = _Checker()
    legal_name = check.text("legal_name", spec.legal_name, 1, 200)
    a = spec.address
    country = _country(check, "address.country", a.country)
    street = check.text("address.street", a.street, 1, 100)
    city = check.text("address.city", a.city, 1, 100)
    postcode = check.text("address.postcode", a.postcode, 1, 12)
    if postcode is not None:
        postcode = postcode.upper() if country in ("NL", "GB", "IE") else postcode
        rule = _POSTCODES.get(country or "")
        if rule is not None:
            check.pattern("address.postcode", postcode, re.compile(rule), f"not a postcode of {country}")
        else:
            check.pattern("address.postcode", postcode, _POSTCODE_ANY, "1 to 12 letters, digits, spaces or hyphens")
    b = spec.bank
    holder = check.text("bank.account_holder", b.account_holder, 1, 70)  # SEPA: at most 70 characters
    iban = _iban(check, b.iban)
    bic = _bic(check, b.bic) if b.bic is not None and b.bic.strip() else None
    bank_name = check.text("bank.bank_name", b.bank_name, 1, 100, required=False)
    vat_id = _vat_id(check, spec.vat_id, country) if spec.vat_id is not None and spec.vat_id.strip() else None
    tax_number = check.text("tax_number", spec.tax_number, 1, 30, required=False)
    check.pattern("tax_number", tax_number, _TAX_NUMBER, "1 to 30 digits, letters, spaces, '/', '.' or '-'")
    register = None
    if spec.register is not None:
        register = {
            "court": check.text("register.court", spec.register.court, 1, 100),
            "number": check.text("register.number", spec.register.number, 1, 50),
        }
    directors = check.text("managing_directors", spec.managing_directors, 1, 200, required=False)
    contact = None
    if spec.contact is not None:
        c = spec.contact
        phone = check.text("contact.phone", c.phone, 1, 30, required=False)
        check.pattern("contact.phone", phone, _PHONE, "a phone number: digits, spaces, + ( ) / -")
        email = check.text("contact.email", c.email, 3, 254, required=False)
        check.pattern("contact.email", email, _EMAIL, "an e-mail address")
        web = check.text("contact.web", c.web, 4, 200, required=False)
        check.pattern("contact.web", web, _WEB, "a web address, e.g. https://example.de")
        contact = {"phone": phone, "email": email, "web": web}
    language = spec.letter_language
    if language is not None and language not in ("de", "en"):
        check.fail("letter_language", "de or en (absent: from the business code's country)")
    if check.errors:
        raise Unprocessable(
            "profile_invalid",
            "the business profile is not valid: " + "; ".join(f"{e.field}: {e.message}" for e in check.errors),
            check.errors,
        )
    del business
    return {
        "legal_name": legal_name,
        "address": {"street": street, "postcode": postcode, "city": city, "country": country},
        "bank": {"account_holder": holder, "iban": iban, "bic": bic, "bank_name": bank_name},
        "vat_id": vat_id,
        "tax_number": tax_number,
        "register": register,
        "managing_directors": directors,
        "contact": contact,
        "letter_language": language,
    }


def default_language(country: str) -> Language:
    """The letters' language when the profile names none: German for DE, AT, CH, LI and LU, else English."""
    return "de" if country in GERMAN_COUNTRIES else "en"
