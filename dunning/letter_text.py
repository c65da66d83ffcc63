"""What a letter says, pure given a `Letter`: the model, and its wording in German and English.

Wording per level (German for letter language `de`, English for `en`): level 1 is the payment reminder; the
levels after it are the 1st, 2nd, ... dunning notice; the policy's last level is the final notice, which
announces the hand-over to a collection agency (`after_final: collection`) or further legal steps; the
collection letter tells the customer the claim was handed over. Fees and interest carry no VAT; interest is
shown with its period, basis and rate (base rate + 5 or 9 points). German law (§288 BGB) is cited only for a
business code in DE; elsewhere the same figures stand without a statute ("reference rate"). Claims are sorted by
date, then invoice number in natural order (`sort_items`); the street line follows the country's custom
(`addressee_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from dunning.letter_address import (
    Language,
    country_name,
)
from ledger.money import format_amount
from ledger.profile_fields import ProfileOut
from ledger.profiles import Logo
from payments.references import printed

__all__ = [
    "Interest",
    "Letter",
    "LetterItem",
    "Words",
    "bank_lines",
    "document_name",
    "footer_columns",
    "info_block",
    "interest_line",
    "item_rows",
    "number_label",
    "paragraphs",
    "sender_line",
    "title",
]


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


class Words:
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


def paragraphs(letter: Letter, w: Words) -> tuple[str, list[str], list[str]]:
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


def item_rows(letter: Letter, w: Words) -> list[tuple[str, str, str, str]]:
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


def interest_line(letter: Letter, w: Words) -> str | None:
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


def info_block(letter: Letter, w: Words) -> list[tuple[str, str]]:
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


def bank_lines(letter: Letter) -> list[tuple[str, str]]:
    de = letter.language == "de"
    b = letter.sender.bank
    rows = [("Kontoinhaber" if de else "Account holder", b.account_holder), ("IBAN", _grouped_iban(b.iban))]
    if b.bic:
        rows.append(("BIC", b.bic))
    if b.bank_name:
        rows.append(("Bank", b.bank_name))
    rows.append(("Verwendungszweck" if de else "Reference", printed(letter.payment_reference)))
    return rows


def footer_columns(letter: Letter) -> list[list[str]]:
    de = letter.language == "de"
    s = letter.sender
    own = s.address.country
    first = [s.legal_name, s.address.street, f"{s.address.postcode} {s.address.city}"]
    if own != "DE" or letter.language != "de":
        first.append(country_name(own, letter.language).title())
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
