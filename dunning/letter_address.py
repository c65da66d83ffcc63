"""The addressee in the envelope's window, pure: the bill-to's lines in the country's custom and their fit.

`addressee_lines` builds the window's lines from a bill-to (UPU conventions for the house number and the postcode),
`missing_address` says what a bill-to lacks to be posted to, and `fit_address` / `fit_line` fit lines into the
DIN 5008 Anschriftzone given a width function, so they are tested without a PDF. The positions are
`dunning.letter_render`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from babel import Locale

from ledger.errors import FieldError

__all__ = [
    "ADDRESS_FIELD",
    "ADDRESS_SIZES",
    "ADDRESS_TEXT_LEFT",
    "ADDRESS_TEXT_WIDTH",
    "NAME_FIELDS",
    "SENDER_SIZES",
    "VERMERK_ZONE_H",
    "AddressBlock",
    "Language",
    "addressee_lines",
    "bill_to_sources",
    "country_name",
    "fit_address",
    "fit_line",
    "missing_address",
    "recipient_of",
    "wrap",
]

Language = Literal["de", "en"]

ADDRESS_FIELD = (20.0, 45.0, 85.0, 45.0)  # x, y, width, height
VERMERK_ZONE_H = 17.7  # Zusatz- und Vermerkzone; the Anschriftzone follows (27.3 mm)
# wraps, and when the lines do not fit at 10 pt the size steps down to 8 pt (DIN 5008 allows 8 pt and more)
ADDRESS_TEXT_LEFT = ADDRESS_FIELD[0] + 5
ADDRESS_TEXT_WIDTH = ADDRESS_FIELD[2] - 5
ANSCHRIFT_H = ADDRESS_FIELD[3] - VERMERK_ZONE_H
ADDRESS_SIZES = ((10.0, 4.23), (9.0, 3.8), (8.0, 3.4))  # (pt, line height in mm): 6, 7 and 8 lines
SENDER_SIZES = (7.0, 6.5, 6.0, 5.5)  # the sender line shrinks to the window's width, then is shortened
# postal conventions where they are simple (Universal Postal Union addressing): the house number before the
# street, and where the postcode goes; countries without postcodes need none
NUMBER_FIRST = frozenset({"FR", "MC", "LU", "GB", "IE", "US", "CA", "AU", "NZ"})
POSTCODE_OWN_LINE = frozenset({"GB", "IE"})  # the town, then the postcode on a line of its own
POSTCODE_AFTER_PLACE = frozenset({"US", "CA", "AU", "NZ"})  # "Springfield, IL 62704"
NO_POSTCODE = frozenset({"AE", "HK", "IE", "MO", "QA"})
NAME_FIELDS = frozenset({"bill_to.company", "bill_to.first_name", "bill_to.last_name"})
_PRINTED_FIELDS = ("company", "first_name", "last_name", "street", "street_number", "postal_code", "postal_place")


def wrap(text: str, width: float, width_of: Callable[[str], float]) -> list[str]:
    """The text in lines no wider than `width` (mm): broken between words, a word wider than a line between
    its characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if width_of(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        rest = word
        while len(rest) > 1 and width_of(rest) > width:
            cut = len(rest) - 1
            while cut > 1 and width_of(rest[:cut]) > width:
                cut -= 1
            lines.append(rest[:cut])
            rest = rest[cut:]
        current = rest
    return [*lines, current] if current else lines


def _shortened(text: str, width: float, width_of: Callable[[str], float]) -> str:
    """The text cut to fit `width` with an ellipsis."""
    while text and width_of(text.rstrip() + "\u2026") > width:
        text = text[:-1]
    return text.rstrip() + "\u2026"


@dataclass(frozen=True)
class AddressBlock:
    """The addressee as printed in the Anschriftzone: font size (pt), line height (mm), the lines."""

    size: float
    leading: float
    lines: list[str]


def fit_address(lines: Sequence[str], names: int, width_of: Callable[[str, float], float]) -> AddressBlock | None:
    """The addressee's lines fitted into the Anschriftzone (DIN 5008: 80 mm wide from 25 mm, 27.3 mm high):
    each line wrapped to the width, at 10 pt (6 lines), else 9 pt (7 lines), else 8 pt (8 lines). When even 8 pt
    needs more lines, the first `names` lines (company, person) give way — each keeps at least one line, the last
    one kept is shortened with "…" — while street, place and country are never cut. None when those alone do
    not fit. `width_of(text, size)` is the printed width in mm."""
    for size, leading in ADDRESS_SIZES:
        wrapped = _wrapped(lines, size, width_of)
        if sum(len(w) for w in wrapped) <= _capacity(leading):
            return AddressBlock(size, leading, [line for w in wrapped for line in w])
    size, leading = ADDRESS_SIZES[-1]
    wrapped = _wrapped(lines, size, width_of)
    heads, postal = [w for w in wrapped[:names] if w], [line for w in wrapped[names:] for line in w]
    budget = _capacity(leading) - len(postal) - len(heads)
    if budget < 0:
        return None
    kept: list[str] = []
    for w in heads:  # one line each, and the lines left to the names in order (the company first)
        share = 1 + min(budget, len(w) - 1)
        budget -= share - 1
        part = w[:share]
        if share < len(w):
            part[-1] = _shortened(f"{part[-1]} {w[share]}", ADDRESS_TEXT_WIDTH,
                                  functools.partial(_at_size, width_of, size))  # fmt: skip
        kept += part
    return AddressBlock(size, leading, kept + postal)


def _capacity(leading: float) -> int:
    return int(ANSCHRIFT_H / leading + 1e-9)


def _wrapped(lines: Sequence[str], size: float, width_of: Callable[[str, float], float]) -> list[list[str]]:
    return [wrap(line, ADDRESS_TEXT_WIDTH, functools.partial(_at_size, width_of, size)) for line in lines]


def _at_size(width_of: Callable[[str, float], float], size: float, text: str) -> float:
    return width_of(text, size)


def fit_line(
    text: str, sizes: Sequence[float], width: float, width_of: Callable[[str, float], float]
) -> tuple[float, str]:
    """One line at the first size it fits in `width` (mm), else at the smallest, shortened with "…"."""
    for size in sizes:
        if width_of(text, size) <= width:
            return size, text
    smallest = sizes[-1]
    return smallest, _shortened(text, width, functools.partial(_at_size, width_of, smallest))


def _text(bill_to: Mapping[str, Any], key: str) -> str:
    value = bill_to.get(key)
    return " ".join(value.split()) if isinstance(value, str) else ""


def missing_address(bill_to: Mapping[str, Any] | None) -> list[FieldError]:
    """What a bill-to lacks to be posted to: a name (person or company), the street, the postcode (not in
    countries without postcodes, `NO_POSTCODE`), the place and the country. Empty when it is complete."""
    b = bill_to or {}
    missing = []
    if not (_text(b, "company") or _text(b, "first_name") or _text(b, "last_name")):
        missing.append(FieldError("bill_to.last_name", "a name or a company to address the letter to"))
    for key, what in (("street", "the street (with the house number)"), ("postal_code", "the postcode"),
                      ("postal_place", "the town or city"), ("country_code", "the country")):  # fmt: skip
        if key == "postal_code" and b.get("country_code") in NO_POSTCODE:
            continue
        if not _text(b, key):
            missing.append(FieldError(f"bill_to.{key}", f"{what} is missing"))
    return missing


def addressee_lines(bill_to: Mapping[str, Any], sender_country: str, language: Language) -> tuple[list[str], int]:
    """The window's lines from a complete bill-to, and how many of them are names: the company, the person,
    the street line, postcode and place, and the country in capitals when it is not the sender's (DIN 5008).
    The street line is the street as given, with the house number after it, or before it where that is the
    custom (`NUMBER_FIRST`: "10 Rue de Rivoli"); a number the street already holds is not added again. The
    postcode stands before the place, after it (`POSTCODE_AFTER_PLACE`), or on a line of its own
    (`POSTCODE_OWN_LINE`)."""
    country = _text(bill_to, "country_code")
    person = " ".join(p for p in (_text(bill_to, "first_name"), _text(bill_to, "last_name")) if p)
    names = [p for p in (_text(bill_to, "company"), person) if p]
    street, number = _text(bill_to, "street"), _text(bill_to, "street_number")
    if number and number not in street.split():
        street = f"{number} {street}" if country in NUMBER_FIRST else f"{street} {number}"
    postcode, place = _text(bill_to, "postal_code"), _text(bill_to, "postal_place")
    if country in POSTCODE_OWN_LINE:
        places = [p for p in (place, postcode) if p]
    elif country in POSTCODE_AFTER_PLACE:
        places = [" ".join(p for p in (place, postcode) if p)]
    else:
        places = [" ".join(p for p in (postcode, place) if p)]
    lines = [*names, street, *places]
    if country != sender_country:
        lines.append(country_name(country, language))
    return lines, len(names)


def bill_to_sources(bill_to: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((f"bill_to.{key}", _text(bill_to, key)) for key in _PRINTED_FIELDS if _text(bill_to, key))


def recipient_of(bill_to: Mapping[str, Any]) -> str | None:
    return " ".join(p for p in (_text(bill_to, "first_name"), _text(bill_to, "last_name")) if p) or None


def country_name(code: str, language: Language) -> str:
    territories = Locale(language).territories
    return str(territories.get(code, code)).upper()
