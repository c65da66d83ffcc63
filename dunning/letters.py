"""Dunning letters and the collection hand-over letter: mailable documents, as PDF and as HTML.

A letter is assembled (`notice_letter`, `case_letter`) from what is stored and never changes — the dunning
notice's content (level, items, fees, interest, pay-by date; `dunning.runs`), the collection case and the open
items at its hand-over, the orders' bill-to address and invoices — and from the business profile
(`ledger.profiles`: letterhead, bank, footer, language). Without a profile there is no sender and no bank
account to pay to, so the letter routes answer 409 `profile_missing`; without a postal address in the bill-to
(street, postcode, place, country, a name or company) there is nobody to post it to: 409 `address_missing`, naming
the missing fields. Dunning runs never need either: the notice is recorded and booked all the same.

Layout (`render_pdf`): DIN 5008 form B on A4 for a DL window envelope (C6/5 or DL with a window at the left).
The address field is 85 x 45 mm at 20 mm from the left and 45 mm from the top: its first 17.7 mm are the
"Zusatz- und Vermerkzone", whose last line is the sender line (the return address, 7 pt), then the
"Anschriftzone" with the addressee (27.3 mm), written from 25 mm and never wider than 80 mm: lines wrap, the
size steps from 10 pt (6 lines) to 9 pt (7) and 8 pt (8), then the name lines are shortened with "…"; street
and place are never cut (409 `address_too_long` if they alone do not fit; `fit_address`). The information block
(date, customer number, the document number "Mahnungsnr."/"Notice no.", payment reference) stands at
125 mm; fold marks at 105 and 210 mm and the hole mark at 148.5 mm on the left edge; text from 25 mm to 190 mm;
the footer carries the legal name and address, register, VAT id and tax number, managing directors, contact,
and the bank.

Wording per level (German for letter language `de`, English for `en`): level 1 is the payment reminder; the
levels after it are the 1st, 2nd, ... dunning notice; the policy's last level is the final notice, which
announces the hand-over to a collection agency (`after_final: collection`) or further legal steps; the
collection letter tells the customer the claim was handed over. Fees and interest carry no VAT; interest is
shown with its period, basis and rate (base rate + 5 or 9 points). German law (§288 BGB) is cited only for a
business code in DE; elsewhere the same figures stand without a statute ("reference rate"). Claims are sorted by
date, then invoice number in natural order (`sort_items`); the street line follows the country's custom
(`addressee_lines`).

Payment reference: every letter prints an ISO 11649 creditor reference (`payments.references`) registered
with the customer and the amount; a bank statement line naming it pays that customer's claims.

The PDF embeds Liberation Sans (SIL Open Font License 1.1, `dunning/fonts/`), so umlauts, ß and € render in
every viewer, and takes what it lacks from DejaVu Sans (symbols, some emoji) and WenQuanYi Micro Hei (Chinese,
Japanese, Korean); fpdf2 embeds only the glyphs used. A stored text with a character none of them has is refused
(409 `characters_unprintable`, naming the field) rather than printed without it. HTML is escaped throughout.
"""

from __future__ import annotations

import base64
import functools
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any, Literal, cast

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont

from dunning import accounts
from dunning.items import rate_on
from dunning.policy import base_rates, load_policy
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, NotFound
from ledger.money import format_amount, parse_amount
from ledger.profiles import Logo, ProfileOut, get_profile, load_logo
from payments.references import Requested, creditor_reference, printed
from payments.references import register as register_references

__all__ = [
    "ADDRESS_FIELD",
    "ADDRESS_SIZES",
    "ADDRESS_TEXT_WIDTH",
    "FOLD_MARKS",
    "HOLE_MARK",
    "INFO_LEFT",
    "AddressBlock",
    "Interest",
    "Letter",
    "LetterItem",
    "addressee_lines",
    "case_letter",
    "fit_address",
    "missing_address",
    "natural_key",
    "notice_letter",
    "render_html",
    "render_pdf",
    "sort_items",
    "unprintable",
    "wrap",
]

Language = Literal["de", "en"]
FONTS = Path(__file__).parent / "fonts"
# DIN 5008 form B (mm from the top-left corner of the A4 page)
PAGE_W, PAGE_H = 210.0, 297.0
ADDRESS_FIELD = (20.0, 45.0, 85.0, 45.0)  # x, y, width, height
VERMERK_ZONE_H = 17.7  # Zusatz- und Vermerkzone; the Anschriftzone follows (27.3 mm)
TEXT_LEFT, TEXT_RIGHT = 25.0, 190.0
INFO_LEFT = 125.0
FOLD_MARKS = (105.0, 210.0)
HOLE_MARK = 148.5
FOOTER_TOP = 270.0
# the Anschriftzone: text from 25 mm to the window's right edge (105 mm), 27.3 mm high; a line that is too long
# wraps, and when the lines do not fit at 10 pt the size steps down to 8 pt (DIN 5008 allows 8 pt and more)
ADDRESS_TEXT_LEFT = ADDRESS_FIELD[0] + 5
ADDRESS_TEXT_WIDTH = ADDRESS_FIELD[2] - 5
ANSCHRIFT_H = ADDRESS_FIELD[3] - VERMERK_ZONE_H
ADDRESS_SIZES = ((10.0, 4.23), (9.0, 3.8), (8.0, 3.4))  # (pt, line height in mm): 6, 7 and 8 lines
SENDER_SIZES = (7.0, 6.5, 6.0, 5.5)  # the sender line shrinks to the window's width, then is shortened
# The fonts: Liberation Sans for the text; a character it lacks is taken from DejaVu Sans (symbols, Arabic,
# Armenian, Georgian, some emoji), then from WenQuanYi Micro Hei (Chinese, Japanese, Korean); fpdf2 switches font
# per character (`set_fallback_fonts`). A fallback is loaded only for a letter that needs it.
REGULAR, BOLD = "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"
FALLBACK_FONTS = (("SansSymbols", "DejaVuSans.ttf"), ("SansCJK", "wqy-microhei.ttc"))
# postal conventions where they are simple (Universal Postal Union addressing): the house number before the
# street, and where the postcode goes; countries without postcodes need none
NUMBER_FIRST = frozenset({"FR", "MC", "LU", "GB", "IE", "US", "CA", "AU", "NZ"})
POSTCODE_OWN_LINE = frozenset({"GB", "IE"})  # the town, then the postcode on a line of its own
POSTCODE_AFTER_PLACE = frozenset({"US", "CA", "AU", "NZ"})  # "Springfield, IL 62704"
NO_POSTCODE = frozenset({"AE", "HK", "IE", "MO", "QA"})
_NAME_FIELDS = frozenset({"bill_to.company", "bill_to.first_name", "bill_to.last_name"})
_PRINTED_FIELDS = ("company", "first_name", "last_name", "street", "street_number", "postal_code", "postal_place")


@dataclass(frozen=True)
class LetterItem:
    """One claim on the letter: an order's invoices (numbers and dates), since when it is due, what is open."""

    invoices: list[tuple[str, date]]  # (number, date); empty for a claim without an invoice
    order: str | None
    due: date
    open_minor: int


@dataclass(frozen=True)
class Interest:
    start: date
    through: date
    basis_minor: int
    base_rate: Decimal
    points: Decimal

    @property
    def rate(self) -> Decimal:
        return self.base_rate + self.points


@dataclass(frozen=True)
class Letter:
    kind: Literal["notice", "collection"]
    number: int  # the notice id or the collection case id
    level: int  # 1 = payment reminder; the collection letter: 0
    final: bool
    after_final: str  # collection | write_off
    language: Language
    sender: ProfileOut
    logo: Logo | None
    addressee: list[str]  # the window's lines: the names (company, person), then street, place, country
    recipient: str | None  # the person named in the bill-to, for the salutation
    customer: str
    issued_on: date
    pay_by: date | None
    currency: str
    items: list[LetterItem]
    fee_minor: int  # this letter's dunning fee
    flat_fee_minor: int  # §288 (5) BGB, business customers once in default
    costs_minor: int  # every open fee, these included
    interest_minor: int
    interest: Interest | None
    total_minor: int
    payment_reference: str
    earlier_notices: list[date] = field(default_factory=list)  # the collection letter: the notices before it
    addressee_names: int = 1  # how many of the addressee's first lines name them (they give way when too long)
    sources: tuple[tuple[str, str], ...] = ()  # the bill-to's fields printed: ("bill_to.street", "Lindenweg")
    country: str = "DE"  # the business code's country: whose law the letter cites (German law only for DE)

    @property
    def principal_minor(self) -> int:
        return sum(i.open_minor for i in self.items)

    @property
    def earlier_costs_minor(self) -> int:
        return self.costs_minor - self.fee_minor - self.flat_fee_minor


# --- wording ------------------------------------------------------------------------------------------------
def _ordinal(level: int, language: Language) -> str:
    n = level - 1  # level 2 is the first dunning notice
    if language == "de":
        return f"{n}."
    return {1: "First", 2: "Second", 3: "Third"}.get(n, f"{n}th")


def title(letter: Letter) -> str:
    de = letter.language == "de"
    if letter.kind == "collection":
        return "Übergabe Ihrer Forderung an ein Inkassounternehmen" if de else "Your debt handed over for collection"
    if letter.level == 1:
        return "Zahlungserinnerung" if de else "Payment reminder"
    if letter.final:
        if letter.after_final == "collection":
            return "Letzte Mahnung vor Übergabe an ein Inkassounternehmen" if de else "Final notice before collection"
        return "Letzte Mahnung" if de else "Final dunning notice"
    return f"{_ordinal(letter.level, 'de')} Mahnung" if de else f"{_ordinal(letter.level, 'en')} dunning notice"


class _Words:
    """Number, date and country formatting in the letter's language."""

    def __init__(self, letter: Letter) -> None:
        self.letter = letter
        self.locale = "de_DE" if letter.language == "de" else "en_GB"

    def money(self, minor: int) -> str:
        amount = Decimal(format_amount(minor, self.letter.currency))
        return str(format_currency(amount, self.letter.currency, locale=self.locale))

    def day(self, value: date) -> str:
        pattern = "dd.MM.yyyy" if self.letter.language == "de" else "d MMMM yyyy"
        return str(format_date(value, pattern, locale=self.locale))

    def short_day(self, value: date) -> str:
        """A date in a table column: 15.10.2026, 15 Oct 2026."""
        pattern = "dd.MM.yyyy" if self.letter.language == "de" else "d MMM yyyy"
        return str(format_date(value, pattern, locale=self.locale))

    def percent(self, value: Decimal) -> str:
        return str(format_decimal(value, format="#,##0.00", locale=self.locale))

    def points(self, value: Decimal) -> str:
        return str(format_decimal(value, format="#,##0.##", locale=self.locale))


def _country_name(code: str, language: Language) -> str:
    territories = Locale(language).territories
    return str(territories.get(code, code)).upper()


def _paragraphs(letter: Letter, w: _Words) -> tuple[str, list[str], list[str]]:
    """Salutation, the paragraphs before the table and the paragraphs after it."""
    de, german_law = letter.language == "de", letter.country == "DE"
    total, pay_by = w.money(letter.total_minor), w.day(letter.pay_by) if letter.pay_by else ""
    name = letter.recipient
    if name:
        salutation = f"Guten Tag {name}," if de else f"Dear {name},"
    else:
        salutation = "Sehr geehrte Damen und Herren," if de else "Dear Sir or Madam,"
    if letter.kind == "collection":
        dates = ", ".join(w.day(d) for d in letter.earlier_notices)
        statute = " (§\u00a0288 Abs.\u00a04 BGB)" if german_law else ""
        before = [
            f"trotz unserer Zahlungserinnerung und Mahnungen{f' vom {dates}' if dates else ''} haben wir für die "
            "folgenden Rechnungen keine Zahlung von Ihnen erhalten. Wir haben unsere Forderung deshalb heute an ein "
            "Inkassounternehmen übergeben, das sich mit Ihnen in Verbindung setzen wird."
            if de
            else f"Despite our payment reminder and dunning notices{f' of {dates}' if dates else ''}, we have not "
            "received your payment for the invoices below. We have therefore handed our claim over to a collection "
            "agency today, which will contact you."
        ]
        after = [
            f"Offen sind {total}. Weitere Kosten des Inkassoverfahrens gehen zu Ihren Lasten{statute}. "
            "Zahlungen, die Sie jetzt noch an uns leisten, "
            "rechnen wir an; bitte geben Sie dabei die Zahlungsreferenz an."
            if de
            else f"The amount due is {total}. Further costs of the collection are yours to bear. Payments you make "
            "to us now will still be credited; please quote the payment reference."
        ]
        return salutation, before, after
    if letter.level == 1:
        before = [
            "sicher ist es Ihrer Aufmerksamkeit entgangen: Für die folgenden Rechnungen haben wir bis heute keine "
            "Zahlung erhalten."
            if de
            else "Perhaps it has escaped your notice: we have not yet received payment for the invoices below."
        ]
    elif letter.final:
        before = [
            "trotz unserer Zahlungserinnerung und Mahnungen haben wir für die folgenden Rechnungen noch immer keine "
            "Zahlung erhalten. Dies ist unsere letzte Mahnung."
            if de
            else "Despite our payment reminder and dunning notices, we still have not received payment for the "
            "invoices below. This is our final notice."
        ]
    else:
        before = [
            "leider haben wir auf unsere Zahlungserinnerung hin noch keine Zahlung für die folgenden Rechnungen "
            "erhalten. Sie befinden sich mit der Zahlung in Verzug."
            if de
            else "Unfortunately, we have received no payment for the invoices below since our payment reminder. "
            "Your payment is overdue."
        ]
    after = [
        f"Bitte überweisen Sie den Gesamtbetrag von {total} bis zum {pay_by} unter Angabe der Zahlungsreferenz auf "
        "das unten genannte Konto."
        if de
        else f"Please transfer the total of {total} by {pay_by} to the account below, quoting the payment reference."
    ]
    if letter.final:
        after.append(
            (
                f"Geht der Betrag bis zum {pay_by} nicht bei uns ein, übergeben wir die Forderung ohne weitere "
                "Ankündigung an ein Inkassounternehmen; die dadurch entstehenden Kosten gehen zu Ihren Lasten."
                if letter.after_final == "collection"
                else f"Geht der Betrag bis zum {pay_by} nicht bei uns ein, werden wir ohne weitere Ankündigung "
                "weitere Schritte einleiten."
            )
            if de
            else (
                f"If we have not received the amount by {pay_by}, we will hand the claim over to a collection agency "
                "without further notice; the costs this causes will be yours to bear."
                if letter.after_final == "collection"
                else f"If we have not received the amount by {pay_by}, we will take further steps without further "
                "notice."
            )
        )
    after.append(
        "Sollten Sie in der Zwischenzeit bereits gezahlt haben, betrachten Sie dieses Schreiben bitte als "
        "gegenstandslos."
        if de
        else "If you have paid in the meantime, please disregard this letter."
    )
    return salutation, before, after


def _rows(letter: Letter, w: _Words) -> list[tuple[str, str, str, str]]:
    """The table: (what, dated, due since, open) per invoice, then fees and interest."""
    de = letter.language == "de"
    rows = []
    for item in letter.items:
        if item.invoices:  # one line per invoice; the order on the first
            order = f" ({'Bestellung' if de else 'order'} {item.order})" if item.order else ""
            what = "\n".join(
                f"{'Rechnung' if de else 'Invoice'} {n}{order if i == 0 else ''}"
                for i, (n, _) in enumerate(item.invoices)
            )
            dates = "\n".join(w.short_day(d) for _, d in item.invoices)
        else:
            what, dates = (
                (f"Bestellung {item.order}" if de else f"Order {item.order}")
                if item.order
                else ("Forderung" if de else "Claim"),
                "",
            )
        rows.append((what, dates, w.short_day(item.due), w.money(item.open_minor)))
    if letter.earlier_costs_minor:
        rows.append(("Mahngebühren früherer Mahnungen" if de else "Dunning fees of earlier notices", "", "",
                     w.money(letter.earlier_costs_minor)))  # fmt: skip
    if letter.fee_minor:
        rows.append(("Mahngebühr dieser Mahnung" if de else "Dunning fee of this notice", "", "",
                     w.money(letter.fee_minor)))  # fmt: skip
    if letter.flat_fee_minor:
        if letter.country == "DE":
            what = (
                "Verzugspauschale nach §\u00a0288 Abs.\u00a05 BGB"
                if de
                else "Flat-rate default charge (§\u00a0288 (5) BGB)"
            )
        else:  # the EU late payment directive's fixed sum, named without a country's statute
            what = "Pauschale für Beitreibungskosten" if de else "Flat-rate compensation for recovery costs"
        rows.append((what, "", "", w.money(letter.flat_fee_minor)))
    if letter.interest_minor:
        rows.append(("Verzugszinsen" if de else "Default interest", "", "", w.money(letter.interest_minor)))
    return rows


def interest_line(letter: Letter, w: _Words) -> str | None:
    """Period, basis and rate of the default interest, or None without interest. For a DE business code the rate
    is the base rate (§247 BGB) plus 5 or 9 points and §288 BGB is cited; elsewhere the same figures are stated
    without a country's statute ("reference rate"): Kontor knows only the German rule. A non-breaking space
    keeps each number with its % sign."""
    i = letter.interest
    if i is None or not letter.interest_minor:
        return None
    nb, german_law = "\u00a0", letter.country == "DE"
    law = f" (§{nb}288{nb}BGB)." if german_law else ""
    if letter.language == "de":
        return (
            f"Verzugszinsen vom {w.day(i.start)} bis {w.day(i.through)} auf {w.money(i.basis_minor)}: "
            f"{'Basiszinssatz' if german_law else 'Referenzzinssatz'} {w.percent(i.base_rate)}{nb}% + "
            f"{w.points(i.points)} Prozentpunkte = {w.percent(i.rate)}{nb}% p.{nb}a.{law} "
            "Mahngebühren und Zinsen sind nicht umsatzsteuerpflichtig."
        )
    return (
        f"Default interest from {w.day(i.start)} to {w.day(i.through)} on {w.money(i.basis_minor)}: "
        f"{'base rate' if german_law else 'reference rate'} {w.percent(i.base_rate)}{nb}% + {w.points(i.points)} "
        f"percentage points = {w.percent(i.rate)}{nb}% a year{law or '.'} Fees and interest carry no VAT."
    )


def _info(letter: Letter, w: _Words) -> list[tuple[str, str]]:
    de = letter.language == "de"
    contact = letter.sender.contact
    rows = [
        ("Datum" if de else "Date", w.day(letter.issued_on)),
        ("Kundennummer" if de else "Customer number", letter.customer),
        (number_label(letter), str(letter.number)),
        ("Zahlungsreferenz" if de else "Payment reference", printed(letter.payment_reference)),
    ]
    if contact is not None and contact.phone:
        rows.append(("Telefon" if de else "Phone", contact.phone))
    if contact is not None and contact.email:
        rows.append(("E-Mail" if de else "E-mail", contact.email))
    return rows


def number_label(letter: Letter) -> str:
    """The label of the document number (the notice id, the collection case id): a number, not a count of
    reminders, so never "Mahnung 4" next to the title "1. Mahnung"."""
    de = letter.language == "de"
    if letter.kind == "collection":
        return "Inkasso-Fallnr." if de else "Collection case no."
    return "Mahnungsnr." if de else "Notice no."


def document_name(letter: Letter) -> str:
    """The title with the document number, for the HTML title, the PDF's metadata and the head of later pages:
    "1. Mahnung · Mahnungsnr. 4"."""
    return f"{title(letter)} · {number_label(letter)} {letter.number}"


def sender_line(letter: Letter) -> str:
    s = letter.sender
    return f"{s.legal_name} · {s.address.street} · {s.address.postcode} {s.address.city}"


def _grouped_iban(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _bank_lines(letter: Letter) -> list[tuple[str, str]]:
    de = letter.language == "de"
    b = letter.sender.bank
    rows = [("Kontoinhaber" if de else "Account holder", b.account_holder), ("IBAN", _grouped_iban(b.iban))]
    if b.bic:
        rows.append(("BIC", b.bic))
    if b.bank_name:
        rows.append(("Bank", b.bank_name))
    rows.append(("Verwendungszweck" if de else "Reference", printed(letter.payment_reference)))
    return rows


def _footer_columns(letter: Letter) -> list[list[str]]:
    de = letter.language == "de"
    s = letter.sender
    own = s.address.country
    first = [s.legal_name, s.address.street, f"{s.address.postcode} {s.address.city}"]
    if own != "DE" or letter.language != "de":
        first.append(_country_name(own, letter.language).title())
    second: list[str] = []
    if s.managing_directors:
        second.append(f"{'Geschäftsführung' if de else 'Managing directors'}: {s.managing_directors}")
    if s.register is not None:
        second.append(f"{s.register.court}, {s.register.number}")
    if s.vat_id:
        second.append(f"{'USt-IdNr.' if de else 'VAT ID'}: {s.vat_id}")
    if s.tax_number:
        second.append(f"{'Steuernummer' if de else 'Tax number'}: {s.tax_number}")
    third = [p for p in ((s.contact.phone, s.contact.email, s.contact.web) if s.contact else ()) if p]
    b = s.bank
    fourth = [b.bank_name or "", f"IBAN {_grouped_iban(b.iban)}", f"BIC {b.bic}" if b.bic else ""]
    return [c for c in (first, second, third, [x for x in fourth if x]) if c]


# --- fonts and fitting ------------------------------------------------------------------------------------
@functools.cache
def _coverage(file: str) -> frozenset[int]:
    """The code points a font file has glyphs for (read once per process)."""
    probe = FPDF()
    probe.add_font("Probe", "", str(FONTS / file))
    try:
        return frozenset(code for font in probe.fonts.values() if isinstance(font, TTFFont) for code in font.cmap)
    finally:
        _close_fonts(probe)


def _close_fonts(pdf: FPDF) -> None:
    """Close the font files fpdf2 keeps open (its `output()` does that; a PDF only measured or abandoned needs
    it done)."""
    for font in pdf.fonts.values():
        if isinstance(font, TTFFont):
            font.close()


def printed_values(letter: Letter) -> list[tuple[str, str]]:
    """Every stored text the letter prints, with where it comes from: the bill-to's fields (`bill_to.street`),
    the customer number, the orders and invoices, the business profile (`profile.legal_name`). The letter's own
    wording is Kontor's and always in the main font."""
    s = letter.sender
    values = list(letter.sources) or [("addressee", line) for line in letter.addressee]
    values.append(("customer", letter.customer))
    for item in letter.items:
        if item.order:
            values.append(("order_reference", item.order))
        values += [("invoice_number", number) for number, _ in item.invoices]
    profile = [
        ("legal_name", s.legal_name),
        ("address.street", s.address.street),
        ("address.postcode", s.address.postcode),
        ("address.city", s.address.city),
        ("bank.account_holder", s.bank.account_holder),
        ("bank.bank_name", s.bank.bank_name),
        ("managing_directors", s.managing_directors),
        ("register.court", s.register.court if s.register else None),
        ("register.number", s.register.number if s.register else None),
        ("tax_number", s.tax_number),
        ("contact.phone", s.contact.phone if s.contact else None),
        ("contact.email", s.contact.email if s.contact else None),
        ("contact.web", s.contact.web if s.contact else None),
    ]
    values += [(f"profile.{name}", value) for name, value in profile if value]
    return values


def _fallbacks(letter: Letter) -> list[tuple[str, str]]:
    """The fallback fonts (family, file) this letter needs: those with a glyph the main font lacks."""
    main = _coverage(REGULAR)
    lacking = {ord(c) for _, text in printed_values(letter) for c in text} - main
    return [(family, file) for family, file in FALLBACK_FONTS if lacking and lacking & _coverage(file)]


def unprintable(letter: Letter) -> list[FieldError]:
    """The printed values with a character that none of the letter's fonts has, each with the characters: such
    a PDF would silently drop them (and misaddress the letter), so `render_pdf` refuses it instead."""
    values = printed_values(letter)
    main = _coverage(REGULAR)
    if all(ord(c) in main for _, text in values for c in text if not c.isspace()):
        return []  # the common case: the fallback fonts need not even be read
    covered = main.union(*(_coverage(file) for _, file in FALLBACK_FONTS))
    errors = []
    for name, text in values:
        lacking = sorted({c for c in text if ord(c) not in covered and not c.isspace()}, key=ord)
        if lacking:
            chars = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in lacking)
            errors.append(FieldError(name, f"{chars}: no font of the letter has this character"))
    return errors


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


# --- HTML -------------------------------------------------------------------------------------------------
def render_html(letter: Letter) -> str:
    """The letter as one HTML page (printable; every value escaped; no scripts, no external resources)."""
    w = _Words(letter)
    e = escape
    salutation, before, after = _paragraphs(letter, w)
    measure = _Pdf(letter)  # the PDF's fonts measure the window's lines (Liberation Sans is metric-compatible
    try:  # with Arial); a browser prints what no font here has with its own fonts
        block = fit_address(letter.addressee, letter.addressee_names, measure.width_at)
        sender_size, sender = fit_line(sender_line(letter), SENDER_SIZES, ADDRESS_TEXT_WIDTH, measure.width_at)
    finally:
        _close_fonts(measure)
    if block is None:
        block = AddressBlock(ADDRESS_SIZES[-1][0], ADDRESS_SIZES[-1][1], letter.addressee)
    de = letter.language == "de"
    heads = ("Beleg", "Datum", "fällig seit", "offen") if de else ("Document", "Date", "Due since", "Open")
    rows = "".join(
        "<tr>" + "".join(f"<td{' class=num' if n == 3 else ''}>{e(v).replace(chr(10), '<br>')}</td>"
                         for n, v in enumerate(row)) + "</tr>"
        for row in _rows(letter, w)
    )  # fmt: skip
    interest = interest_line(letter, w)
    bank = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _bank_lines(letter))
    info = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _info(letter, w))
    footer = "".join("<div>" + "<br>".join(e(x) for x in col) + "</div>" for col in _footer_columns(letter))
    logo = ""
    if letter.logo is not None:
        data = base64.b64encode(letter.logo.data).decode()
        logo = f'<img class=logo alt="" src="data:{letter.logo.media_type};base64,{data}">'
    total = "Gesamtbetrag" if de else "Total"
    return f"""<!DOCTYPE html>
<html lang="{letter.language}"><head><meta charset="utf-8"><title>{e(document_name(letter))}</title>
<style>
@page{{size:A4;margin:0}}
body{{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;font-size:10.5pt;margin:0}}
.page{{position:relative;width:210mm;min-height:297mm;box-sizing:border-box;padding:0 20mm 0 25mm}}
.head{{position:absolute;top:12mm;left:25mm;right:20mm;height:30mm}}
.head .name{{font-size:15pt;font-weight:bold}}
.logo{{position:absolute;right:0;top:0;max-height:25mm;max-width:60mm}}
.window{{position:absolute;left:20mm;top:45mm;width:85mm;height:45mm;padding-left:5mm;box-sizing:border-box}}
.sender{{position:absolute;top:12.7mm;font-size:{sender_size:g}pt;border-bottom:.2mm solid #000;white-space:nowrap}}
.address{{position:absolute;top:17.7mm;width:80mm;height:27.3mm;overflow:hidden;white-space:nowrap;
font-size:{block.size:g}pt;line-height:{block.leading:g}mm}}
.info{{position:absolute;left:125mm;top:50mm;font-size:9pt;border-collapse:collapse}}
.info th{{text-align:left;font-weight:normal;padding-right:3mm;color:#333}}
.body{{padding-top:98mm}}
h1{{font-size:12pt;margin:0 0 6mm}}
table.items{{width:100%;border-collapse:collapse;margin:4mm 0}}
table.items th{{text-align:left;border-bottom:.3mm solid #000}}
table.items td,table.items th{{padding:1mm 1.5mm;vertical-align:top}}
table.items th.num{{text-align:right}}
.num{{text-align:right;white-space:nowrap}}
table.items tfoot td{{border-top:.3mm solid #000;font-weight:bold}}
.bank th{{text-align:left;font-weight:normal;padding-right:4mm}}
.mark{{position:absolute;left:4mm;width:5mm;border-top:.2mm solid #000}}
footer{{position:absolute;top:270mm;left:25mm;right:20mm;display:flex;gap:6mm;font-size:7pt;color:#333;
border-top:.2mm solid #999;padding-top:2mm}}
</style></head>
<body><div class=page>
<div class=mark style="top:105mm"></div><div class=mark style="top:148.5mm;width:8mm"></div>
<div class=mark style="top:210mm"></div>
<div class=head><div class=name>{e(letter.sender.legal_name)}</div>{logo}</div>
<div class=window><div class=sender>{e(sender)}</div>
<div class=address>{"<br>".join(e(x) for x in block.lines)}</div></div>
<table class=info>{info}</table>
<div class=body>
<h1>{e(title(letter))}</h1>
<p>{e(salutation)}</p>
{"".join(f"<p>{e(p)}</p>" for p in before)}
<table class=items><thead><tr><th>{heads[0]}</th><th>{heads[1]}</th><th>{heads[2]}</th><th class=num>{heads[3]}</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><td colspan=3>{total}</td><td class=num>{e(w.money(letter.total_minor))}</td></tr></tfoot></table>
{f"<p>{e(interest)}</p>" if interest else ""}
{"".join(f"<p>{e(p)}</p>" for p in after)}
<table class=bank>{bank}</table>
<p>{"Mit freundlichen Grüßen" if de else "Yours sincerely"}<br>{e(letter.sender.legal_name)}</p>
</div>
<footer>{footer}</footer>
</div></body></html>
"""


# --- PDF --------------------------------------------------------------------------------------------------
class _Pdf(FPDF):
    def __init__(self, letter: Letter) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.letter = letter
        self.add_font("Sans", "", str(FONTS / REGULAR))
        self.add_font("Sans", "B", str(FONTS / BOLD))
        fallbacks = _fallbacks(letter)
        for family, file in fallbacks:
            self.add_font(family, "", str(FONTS / file))
        if fallbacks:  # regular glyphs serve bold text too: better than none
            self.set_fallback_fonts([family for family, _ in fallbacks], exact_match=False)
        self.set_margins(TEXT_LEFT, 20, PAGE_W - TEXT_RIGHT)
        self.c_margin = 0  # text starts where DIN 5008 puts it (25 mm), not a cell padding further right
        self.set_auto_page_break(True, margin=PAGE_H - FOOTER_TOP + 6)
        self.set_creation_date(_midnight(letter.issued_on))
        self.set_title(document_name(letter))
        self.set_author(letter.sender.legal_name)
        self.set_creator("Kontor")
        self.set_lang(letter.language)

    def header(self) -> None:
        self.set_draw_color(0)
        self.set_line_width(0.2)
        for y in FOLD_MARKS:
            self.line(4, y, 9, y)
        self.line(4, HOLE_MARK, 12, HOLE_MARK)
        if self.page_no() > 1:
            self.set_font("Sans", "", 8)
            self.set_xy(TEXT_LEFT, 12)
            customer = "Kundennummer" if self.letter.language == "de" else "Customer number"
            self.cell(0, 4, f"{document_name(self.letter)} · {customer} {self.letter.customer}")
            self.set_y(22)

    def width_at(self, text: str, size: float) -> float:
        """The printed width (mm) of a text in the regular font at `size` pt (fallback glyphs included)."""
        style, current = self.font_style, self.font_size_pt
        self.set_font("Sans", "", size)
        width = self.get_string_width(text)
        self.set_font("Sans", style, current)
        return width

    def footer(self) -> None:
        columns = _footer_columns(self.letter)
        self.set_draw_color(150)
        self.line(TEXT_LEFT, FOOTER_TOP, TEXT_RIGHT, FOOTER_TOP)
        self.set_font("Sans", "", 6.5)
        self.set_text_color(60)
        # each column as wide as its longest line, the space left shared out between them
        needed = [max(self.get_string_width(t) for t in column) + 2 * self.c_margin + 0.5 for column in columns]
        spare = max(0.0, (TEXT_RIGHT - TEXT_LEFT - sum(needed)) / max(len(columns) - 1, 1))
        x = TEXT_LEFT
        for column, width in zip(columns, needed, strict=True):
            self.set_xy(x, FOOTER_TOP + 1.5)
            self.multi_cell(width, 3, "\n".join(column), align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
            x += width + spare
        self.set_text_color(0)
        self.set_font("Sans", "", 7)
        self.set_xy(TEXT_LEFT, PAGE_H - 10)
        self.cell(TEXT_RIGHT - TEXT_LEFT, 3, f"{self.page_no()}/{{nb}}", align="R")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _head(pdf: _Pdf, letter: Letter, w: _Words) -> None:
    """Letterhead (legal name, logo), the window (sender line, addressee) and the information block."""
    pdf.set_font("Sans", "B", 15)
    pdf.set_xy(TEXT_LEFT, 15)
    pdf.cell(100, 7, letter.sender.legal_name)
    if letter.logo is not None:
        height = 22.0
        width = min(60.0, height * letter.logo.width / letter.logo.height)
        height = width * letter.logo.height / letter.logo.width
        pdf.image(io.BytesIO(letter.logo.data), x=TEXT_RIGHT - width, y=12, w=width, h=height)
    # the window: sender line at the bottom of the Vermerkzone, then the Anschriftzone; nothing wider than 80 mm
    _, y0, _, _ = ADDRESS_FIELD
    size, line = fit_line(sender_line(letter), SENDER_SIZES, ADDRESS_TEXT_WIDTH, pdf.width_at)
    pdf.set_font("Sans", "", size)
    pdf.set_xy(ADDRESS_TEXT_LEFT, y0 + VERMERK_ZONE_H - 4.2)  # text from 25 mm (c_margin is 0)
    pdf.cell(ADDRESS_TEXT_WIDTH, 3.5, line)
    pdf.set_line_width(0.1)
    underline_y = y0 + VERMERK_ZONE_H - 0.6
    pdf.line(ADDRESS_TEXT_LEFT, underline_y, ADDRESS_TEXT_LEFT + pdf.get_string_width(line), underline_y)
    block = address_block(letter, pdf.width_at)
    pdf.set_font("Sans", "", block.size)
    pdf.set_xy(ADDRESS_TEXT_LEFT, y0 + VERMERK_ZONE_H + 0.5)
    for text in block.lines:
        pdf.set_x(ADDRESS_TEXT_LEFT)
        pdf.cell(ADDRESS_TEXT_WIDTH, block.leading, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    # information block
    pdf.set_font("Sans", "", 8.5)
    y = 50.0
    for label, value in _info(letter, w):
        pdf.set_xy(INFO_LEFT - pdf.c_margin, y)
        pdf.set_text_color(70)
        pdf.cell(28, 4.2, label)
        pdf.set_text_color(0)
        pdf.cell(TEXT_RIGHT - INFO_LEFT - 28, 4.2, value)
        y += 4.2


def address_block(letter: Letter, width_of: Callable[[str, float], float]) -> AddressBlock:
    """The addressee fitted into the window (`fit_address`); 409 `address_too_long` when street, place and
    country alone need more than the window's 8 lines at 8 pt."""
    block = fit_address(letter.addressee, letter.addressee_names, width_of)
    if block is None:
        fields = [name for name, _ in letter.sources if name not in _NAME_FIELDS] or ["addressee"]
        raise Conflict(
            "address_too_long",
            f"the address of customer {letter.customer} does not fit the window of the envelope "
            f"({ADDRESS_TEXT_WIDTH:g} mm wide, 8 lines at 8 pt) even with the names shortened",
            [FieldError(name, "too long for the address window") for name in fields],
        )
    return block


def render_pdf(letter: Letter) -> bytes:
    """The letter as PDF (A4, DIN 5008 form B; see the module docstring for the positions). 409
    `characters_unprintable` when a stored text has a character no font of the letter has (each field named),
    409 `address_too_long` when the address cannot fit the window."""
    errors = unprintable(letter)
    if errors:
        raise Conflict(
            "characters_unprintable",
            "the letter would print text with characters none of its fonts has, and lose them: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors)
            + ". Correct the text, or print the HTML letter with a browser's fonts",
            errors,
        )
    pdf = _Pdf(letter)
    try:
        _write(pdf, letter)
        return bytes(pdf.output())
    finally:
        _close_fonts(pdf)


def _write(pdf: _Pdf, letter: Letter) -> None:
    w = _Words(letter)
    pdf.alias_nb_pages()
    pdf.add_page()
    _head(pdf, letter, w)
    # subject and text
    pdf.set_xy(TEXT_LEFT, 98.5)
    pdf.set_font("Sans", "B", 12)
    pdf.cell(0, 6, title(letter), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)
    pdf.set_font("Sans", "", 10)
    salutation, before, after = _paragraphs(letter, w)
    pdf.multi_cell(0, 4.5, salutation, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    for text in before:
        pdf.multi_cell(0, 4.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    _table(pdf, letter, w)
    interest = interest_line(letter, w)
    if interest:
        pdf.set_font("Sans", "", 8.5)
        pdf.multi_cell(0, 4, interest, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    pdf.set_font("Sans", "", 10)
    for text in after:
        pdf.multi_cell(0, 4.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    _bank_block(pdf, letter)
    pdf.ln(4)
    pdf.multi_cell(
        0,
        4.5,
        ("Mit freundlichen Grüßen" if letter.language == "de" else "Yours sincerely") + f"\n{letter.sender.legal_name}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


_COLUMNS = (86.0, 27.0, 25.0, 27.0)  # document, its date, due since, open: 165 mm


def _table(pdf: _Pdf, letter: Letter, w: _Words) -> None:
    de = letter.language == "de"
    heads = ("Beleg", "Datum", "fällig seit", "offen") if de else ("Document", "Date", "Due since", "Open")

    def head() -> None:
        pdf.set_font("Sans", "B", 9)
        for n, (text, width) in enumerate(zip(heads, _COLUMNS, strict=True)):
            pdf.cell(width, 5.5, text, border="B", align="R" if n == 3 else "L")
        pdf.ln()
        pdf.set_font("Sans", "", 9)
        pdf.ln(0.8)

    head()
    for row in _rows(letter, w):
        lines = max(len(cast(list[str], pdf.multi_cell(width, 4.4, text, dry_run=True, output="LINES")))
                    for text, width in zip(row, _COLUMNS, strict=True))  # fmt: skip
        if pdf.will_page_break(lines * 4.4):
            pdf.add_page()
            head()  # the table goes on under its head
        y, x = pdf.get_y(), TEXT_LEFT
        for n, (text, width) in enumerate(zip(row, _COLUMNS, strict=True)):
            pdf.set_xy(x, y)
            pdf.multi_cell(width, 4.4, text, align="R" if n == 3 else "L", new_x=XPos.RIGHT, new_y=YPos.TOP)
            x += width
        pdf.set_xy(TEXT_LEFT, y + lines * 4.4 + 0.8)
    pdf.set_font("Sans", "B", 9.5)
    pdf.cell(sum(_COLUMNS[:3]), 6, "Gesamtbetrag" if de else "Total", border="T")
    pdf.cell(_COLUMNS[3], 6, w.money(letter.total_minor), border="T", align="R")
    pdf.ln(9)


def _bank_block(pdf: _Pdf, letter: Letter) -> None:
    rows = _bank_lines(letter)
    if pdf.will_page_break(5 * len(rows) + 2):
        pdf.add_page()
    pdf.set_font("Sans", "", 10)
    for label, value in rows:
        pdf.set_x(TEXT_LEFT)
        pdf.cell(38, 4.6, label)
        pdf.set_font("Sans", "B" if label in ("IBAN", "Verwendungszweck", "Reference") else "", 10)
        pdf.cell(0, 4.6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Sans", "", 10)


# --- assembling --------------------------------------------------------------------------------------------
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
        lines.append(_country_name(country, language))
    return lines, len(names)


def _bill_to_sources(bill_to: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((f"bill_to.{key}", _text(bill_to, key)) for key in _PRINTED_FIELDS if _text(bill_to, key))


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts numbers within text by value: INV-6-2 before INV-6-10 (digit runs compare as numbers)."""
    parts = re.split(r"([0-9]+)", text)
    return tuple((0, int(p)) if n % 2 else (1, p.casefold()) for n, p in enumerate(parts))


def sort_items(items: Sequence[LetterItem]) -> list[LetterItem]:
    """The claims in the order of their first invoice's date (else their due date), then by due date, then by
    invoice number (else order) in natural order; the invoices of a claim by date, then number."""

    def invoice(entry: tuple[str, date]) -> tuple[date, tuple[tuple[int, int | str], ...]]:
        return entry[1], natural_key(entry[0])

    def claim(item: LetterItem) -> tuple[date, date, tuple[tuple[int, int | str], ...]]:
        first = item.invoices[0] if item.invoices else None
        return (first[1] if first else item.due), item.due, natural_key(first[0] if first else item.order or "")

    return sorted((replace(i, invoices=sorted(i.invoices, key=invoice)) for i in items), key=claim)


def _recipient(bill_to: Mapping[str, Any]) -> str | None:
    return " ".join(p for p in (_text(bill_to, "first_name"), _text(bill_to, "last_name")) if p) or None


def _postal(bill_to: dict[str, Any] | None, order: str | None, customer: str) -> dict[str, Any]:
    """The bill-to a letter is addressed to; 409 `address_missing` naming the fields it lacks (a letter that
    cannot be posted must not leave the house, like one without a sender: `profile_missing`)."""
    missing = missing_address(bill_to)
    if missing:
        fields = ", ".join(m.field for m in missing)
        where = (
            f"the bill-to of order {order} (customer {customer}) has no postal address: {fields} missing"
            if order
            else f"customer {customer} has no order, so no bill-to to address the letter to"
        )
        raise Conflict("address_missing", f"{where}; the letter cannot be posted (the notice is recorded)", missing)
    return bill_to or {}


async def _orders(
    ctx: Kontor, business: Business, customer: str, orders: Sequence[str]
) -> tuple[dict[str, list[tuple[str, date]]], dict[str, Any] | None, str | None]:
    """The invoices (number, date) of each order, and the bill-to of the customer's latest of them (else of the
    customer's latest order) with that order's reference."""
    invoices = await ctx.pool.fetch(
        "SELECT order_ref, ref, document_date FROM order_documents WHERE merchant_id = $1 AND business = $2 "
        "AND kind = 'invoice' AND order_ref = ANY($3::text[]) ORDER BY document_date, ref",
        business.merchant_id,
        business.code,
        list(orders),
    )
    by_order: dict[str, list[tuple[str, date]]] = {}
    for r in invoices:
        by_order.setdefault(r["order_ref"], []).append((r["ref"], r["document_date"]))
    latest = await ctx.pool.fetchrow(
        "SELECT order_ref, bill_to FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
        "ORDER BY order_ref = ANY($4::text[]) DESC, order_date DESC, created_at DESC LIMIT 1",
        business.merchant_id,
        business.code,
        customer,
        list(orders),
    )
    if latest is None:
        return by_order, None, None
    return by_order, latest["bill_to"], latest["order_ref"]


async def _sender(ctx: Kontor, business: Business) -> tuple[ProfileOut, Logo | None]:
    return await get_profile(ctx, business, missing="409"), await load_logo(ctx, business)


def _minor(text: str | None, currency: str) -> int:
    return parse_amount(text, currency, allow_zero=True) if text else 0


async def notice_letter(ctx: Kontor, business: Business, notice_id: int) -> Letter:
    """The letter of a dunning notice (404 `notice_not_found`, 409 `profile_missing`)."""
    row = await ctx.pool.fetchrow(
        "SELECT customer, level, issued_on, pay_by, content FROM dunning_notices WHERE merchant_id = $1 "
        "AND business = $2 AND notice_id = $3",
        business.merchant_id,
        business.code,
        notice_id,
    )
    if row is None:
        raise NotFound("notice_not_found", f"dunning notice {notice_id} not found")
    sender, logo = await _sender(ctx, business)
    c: dict[str, Any] = row["content"]
    cur = c["currency"]
    orders = [i["order_reference"] for i in c["items"] if i["order_reference"]]
    invoices, bill_to_found, bill_to_order = await _orders(ctx, business, row["customer"], orders)
    bill_to = _postal(bill_to_found, bill_to_order, row["customer"])
    items = [
        LetterItem(
            invoices=invoices.get(i["order_reference"] or "", []),
            order=i["order_reference"],
            due=date.fromisoformat(i["due_date"]),
            open_minor=_minor(i["amount"], cur),
        )
        for i in c["items"]
    ]
    if "final" in c:
        final, after_final = bool(c["final"]), str(c["after_final"])
    else:  # notices issued before letters existed: the policy as it is now
        policy, _ = await load_policy(ctx, business)
        final, after_final = row["level"] == len(policy.levels) and row["level"] > 1, policy.after_final
    interest_minor = _minor(c["interest"], cur)
    interest = None
    if interest_minor and c.get("default_on"):
        points, base = c.get("interest_points"), c.get("base_rate")
        if points is None or base is None:
            policy, _ = await load_policy(ctx, business)
            points = str(policy.consumer_points)
            base = str(rate_on(await base_rates(ctx), row["issued_on"]))
        interest = Interest(
            start=date.fromisoformat(c["default_on"]),
            through=row["issued_on"],
            basis_minor=_minor(c["principal"], cur),
            base_rate=Decimal(base),
            points=Decimal(points),
        )
    language = sender.letter_language
    addressee, names = addressee_lines(bill_to, sender.address.country, language)
    return Letter(
        kind="notice",
        number=notice_id,
        level=row["level"],
        final=final,
        after_final=after_final,
        language=language,
        sender=sender,
        logo=logo,
        addressee=addressee,
        recipient=_recipient(bill_to),
        customer=row["customer"],
        issued_on=row["issued_on"],
        pay_by=row["pay_by"],
        currency=cur,
        items=sort_items(items),
        fee_minor=_minor(c["fee"], cur),
        flat_fee_minor=_minor(c.get("flat_fee"), cur),
        costs_minor=_minor(c["costs"], cur),
        interest_minor=interest_minor,
        interest=interest,
        total_minor=_minor(c["total"], cur),
        payment_reference=creditor_reference("dunning_notice", notice_id),
        addressee_names=names,
        sources=_bill_to_sources(bill_to),
        country=business.country,
    )


async def case_letter(ctx: Kontor, business: Business, case_id: int) -> Letter:
    """The letter telling the customer their debt was handed over for collection, with what was open then
    (404 `collection_case_not_found`, 409 `profile_missing`). Its payment reference is registered on the
    first request, so a payment the customer still makes to the merchant is recognised."""
    row = await ctx.pool.fetchrow(
        "SELECT customer, amount_minor, opened_on FROM collection_cases WHERE merchant_id = $1 AND business = $2 "
        "AND case_id = $3",
        business.merchant_id,
        business.code,
        case_id,
    )
    if row is None:
        raise NotFound("collection_case_not_found", f"collection case {case_id} not found")
    sender, logo = await _sender(ctx, business)
    customer, on = row["customer"], row["opened_on"]
    cur = business.currency
    open_items = await accounts.customer_open_items(ctx, business, customer, on)
    overdue = [p for p in open_items.principal if p.overdue]
    orders = [p.order_reference for p in overdue if p.order_reference]
    invoices, bill_to_found, bill_to_order = await _orders(ctx, business, customer, orders)
    bill_to = _postal(bill_to_found, bill_to_order, customer)
    notices = await ctx.pool.fetch(
        "SELECT issued_on FROM dunning_notices WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
        "AND issued_on <= $4 ORDER BY issued_on DESC LIMIT 4",
        business.merchant_id,
        business.code,
        customer,
        on,
    )
    reference = creditor_reference("collection_case", case_id)
    if row["amount_minor"] > 0:
        async with ctx.pool.acquire() as conn:
            requested = Requested(reference, customer, row["amount_minor"], orders, f"collection_case:{case_id}")
            await register_references(conn, business, [requested])
    language = sender.letter_language
    addressee, names = addressee_lines(bill_to, sender.address.country, language)
    return Letter(
        kind="collection",
        number=case_id,
        level=0,
        final=True,
        after_final="collection",
        language=language,
        sender=sender,
        logo=logo,
        addressee=addressee,
        recipient=_recipient(bill_to),
        customer=customer,
        issued_on=on,
        pay_by=None,
        currency=cur,
        items=sort_items(
            [
                LetterItem(
                    invoices=invoices.get(p.order_reference or "", []),
                    order=p.order_reference,
                    due=p.due_date,
                    open_minor=_minor(p.amount, cur),
                )
                for p in overdue
            ]
        ),
        fee_minor=0,
        flat_fee_minor=0,
        costs_minor=_minor(open_items.costs, cur),
        interest_minor=_minor(open_items.interest, cur),
        interest=None,
        total_minor=row["amount_minor"],
        payment_reference=reference,
        earlier_notices=sorted(r["issued_on"] for r in notices),
        addressee_names=names,
        sources=_bill_to_sources(bill_to),
        country=business.country,
    )
