"""Dunning letters and the collection hand-over letter: mailable documents, as PDF and as HTML.

A letter is assembled (`notice_letter`, `case_letter`) from what is stored and never changes — the dunning
notice's content (level, items, fees, interest, pay-by date; `dunning.runs`), the collection case and the open
items at its hand-over, the orders' bill-to address and invoices — and from the business profile
(`ledger.profiles`: letterhead, bank, footer, language). Without a profile there is no sender and no bank
account to pay to, so the letter routes answer 409 `profile_missing`; dunning runs never need one.

Layout (`render_pdf`): DIN 5008 form B on A4 for a DL window envelope (C6/5 or DL with a window at the left).
The address field is 85 x 45 mm at 20 mm from the left and 45 mm from the top: its first 17.7 mm are the
"Zusatz- und Vermerkzone", whose last line is the sender line (the return address, 7 pt), then the
"Anschriftzone" with the addressee (27.3 mm, up to 6 lines), written from 25 mm. The information block
(date, customer number, notice, payment reference) stands at 125 mm; fold marks at 105 and 210 mm and the
hole mark at 148.5 mm on the left edge; text from 25 mm to 190 mm; the footer carries the legal name and
address, register, VAT id and tax number, managing directors, contact, and the bank.

Wording per level (German for letter language `de`, English for `en`): level 1 is the payment reminder; the
levels after it are the 1st, 2nd, ... dunning notice; the policy's last level is the final notice, which
announces the hand-over to a collection agency (`after_final: collection`) or further legal steps; the
collection letter tells the customer the claim was handed over. Fees and interest carry no VAT; interest
(§288 BGB) is shown with its period, basis and rate (base rate + 5 or 9 points).

Payment reference: every letter prints an ISO 11649 creditor reference (`payments.references`) registered
with the customer and the amount; a bank statement line naming it pays that customer's claims.

The PDF embeds Liberation Sans (SIL Open Font License 1.1, `dunning/fonts/`), so umlauts, ß and € render in
every viewer; fpdf2 embeds only the glyphs used. HTML is escaped throughout.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
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

from dunning import accounts
from dunning.items import rate_on
from dunning.policy import base_rates, load_policy
from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import NotFound
from ledger.money import format_amount, parse_amount
from ledger.profiles import Logo, ProfileOut, get_profile, load_logo
from payments.references import Requested, creditor_reference, printed
from payments.references import register as register_references

__all__ = [
    "ADDRESS_FIELD",
    "FOLD_MARKS",
    "HOLE_MARK",
    "Interest",
    "Letter",
    "LetterItem",
    "case_letter",
    "notice_letter",
    "render_html",
    "render_pdf",
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
    addressee: list[str]
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
    de = letter.language == "de"
    total, pay_by = w.money(letter.total_minor), w.day(letter.pay_by) if letter.pay_by else ""
    name = letter.recipient
    if name:
        salutation = f"Guten Tag {name}," if de else f"Dear {name},"
    else:
        salutation = "Sehr geehrte Damen und Herren," if de else "Dear Sir or Madam,"
    if letter.kind == "collection":
        dates = ", ".join(w.day(d) for d in letter.earlier_notices)
        before = [
            f"trotz unserer Zahlungserinnerung und Mahnungen{f' vom {dates}' if dates else ''} haben wir für die "
            "folgenden Rechnungen keine Zahlung von Ihnen erhalten. Wir haben unsere Forderung deshalb heute an ein "
            "Inkassounternehmen übergeben, das sich mit Ihnen in Verbindung setzen wird."
            if de
            else f"despite our payment reminder and dunning notices{f' of {dates}' if dates else ''} we have not "
            "received your payment for the invoices below. We have therefore handed our claim over to a collection "
            "agency today, which will contact you."
        ]
        after = [
            f"Offen sind {total}. Weitere Kosten des Inkassoverfahrens gehen zu Ihren Lasten (§\u00a0288 Abs.\u00a04 BGB). "
            "Zahlungen, die Sie jetzt noch an uns leisten, rechnen wir an; bitte geben Sie dabei die "
            "Zahlungsreferenz an."
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
            else "perhaps it has escaped your notice: we have not yet received payment for the invoices below."
        ]
    elif letter.final:
        before = [
            "trotz unserer Zahlungserinnerung und Mahnungen haben wir für die folgenden Rechnungen noch immer keine "
            "Zahlung erhalten. Dies ist unsere letzte Mahnung."
            if de
            else "despite our payment reminder and dunning notices we still have not received payment for the "
            "invoices below. This is our final notice."
        ]
    else:
        before = [
            "leider haben wir auf unsere Zahlungserinnerung hin noch keine Zahlung für die folgenden Rechnungen "
            "erhalten. Sie befinden sich mit der Zahlung in Verzug."
            if de
            else "unfortunately we have received no payment for the invoices below since our payment reminder. "
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
        rows.append(("Verzugspauschale nach § 288 Abs. 5 BGB" if de else "Flat-rate default charge (§ 288 (5) BGB)",
                     "", "", w.money(letter.flat_fee_minor)))  # fmt: skip
    if letter.interest_minor:
        rows.append(("Verzugszinsen" if de else "Default interest", "", "", w.money(letter.interest_minor)))
    return rows


def interest_line(letter: Letter, w: _Words) -> str | None:
    """Period, basis and rate of the default interest (§288 BGB), or None without interest."""
    i = letter.interest
    if i is None or not letter.interest_minor:
        return None
    if letter.language == "de":
        return (
            f"Verzugszinsen vom {w.day(i.start)} bis {w.day(i.through)} auf {w.money(i.basis_minor)}: "
            f"Basiszinssatz {w.percent(i.base_rate)} % + {w.points(i.points)} Prozentpunkte = "
            f"{w.percent(i.rate)} % p. a. (§\u00a0288 BGB). Mahngebühren und Zinsen sind nicht umsatzsteuerpflichtig."
        )
    return (
        f"Default interest from {w.day(i.start)} to {w.day(i.through)} on {w.money(i.basis_minor)}: "
        f"base rate {w.percent(i.base_rate)} % + {w.points(i.points)} percentage points = {w.percent(i.rate)} % "
        "a year (§\u00a0288 BGB). Fees and interest carry no VAT."
    )


def _info(letter: Letter, w: _Words) -> list[tuple[str, str]]:
    de = letter.language == "de"
    contact = letter.sender.contact
    rows = [
        ("Datum" if de else "Date", w.day(letter.issued_on)),
        ("Kundennummer" if de else "Customer number", letter.customer),
        (
            ("Inkasso-Fall" if de else "Collection case")
            if letter.kind == "collection"
            else ("Mahnung" if de else "Notice"),
            str(letter.number),
        ),
        ("Zahlungsreferenz" if de else "Payment reference", printed(letter.payment_reference)),
    ]
    if contact is not None and contact.phone:
        rows.append(("Telefon" if de else "Phone", contact.phone))
    if contact is not None and contact.email:
        rows.append(("E-Mail" if de else "E-mail", contact.email))
    return rows


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


# --- HTML -------------------------------------------------------------------------------------------------
def render_html(letter: Letter) -> str:
    """The letter as one HTML page (printable; every value escaped; no scripts, no external resources)."""
    w = _Words(letter)
    e = escape
    salutation, before, after = _paragraphs(letter, w)
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
<html lang="{letter.language}"><head><meta charset="utf-8"><title>{e(title(letter))} {letter.number}</title>
<style>
@page{{size:A4;margin:0}}
body{{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;font-size:10.5pt;margin:0}}
.page{{position:relative;width:210mm;min-height:297mm;box-sizing:border-box;padding:0 20mm 0 25mm}}
.head{{position:absolute;top:12mm;left:25mm;right:20mm;height:30mm}}
.head .name{{font-size:15pt;font-weight:bold}}
.logo{{position:absolute;right:0;top:0;max-height:25mm;max-width:60mm}}
.window{{position:absolute;left:20mm;top:45mm;width:85mm;height:45mm;padding-left:5mm;box-sizing:border-box}}
.sender{{position:absolute;top:12.7mm;font-size:7pt;border-bottom:.2mm solid #000;white-space:nowrap}}
.address{{position:absolute;top:17.7mm;line-height:4.23mm}}
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
<div class=window><div class=sender>{e(sender_line(letter))}</div>
<div class=address>{"<br>".join(e(x) for x in letter.addressee)}</div></div>
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
        self.add_font("Sans", "", str(FONTS / "LiberationSans-Regular.ttf"))
        self.add_font("Sans", "B", str(FONTS / "LiberationSans-Bold.ttf"))
        self.set_margins(TEXT_LEFT, 20, PAGE_W - TEXT_RIGHT)
        self.c_margin = 0  # text starts where DIN 5008 puts it (25 mm), not a cell padding further right
        self.set_auto_page_break(True, margin=PAGE_H - FOOTER_TOP + 6)
        self.set_creation_date(_midnight(letter.issued_on))
        self.set_title(f"{title(letter)} {letter.number}")
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
            self.cell(0, 4, f"{title(self.letter)} {self.letter.number} · {self.letter.customer}")
            self.set_y(22)

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
    # the window: sender line at the bottom of the Vermerkzone, then the Anschriftzone
    x0, y0, width, _ = ADDRESS_FIELD
    pdf.set_font("Sans", "", 7)
    pdf.set_xy(x0 + 5 - pdf.c_margin, y0 + VERMERK_ZONE_H - 4.2)  # text from 25 mm (a cell pads its text)
    line = sender_line(letter)
    pdf.cell(width - 5, 3.5, line)
    pdf.set_line_width(0.1)
    pdf.line(
        x0 + 5,
        y0 + VERMERK_ZONE_H - 0.6,
        x0 + 5 + min(width - 5, pdf.get_string_width(line)),
        y0 + VERMERK_ZONE_H - 0.6,
    )
    pdf.set_font("Sans", "", 10)
    pdf.set_xy(x0 + 5, y0 + VERMERK_ZONE_H + 0.5)
    for text in letter.addressee[:6]:
        pdf.set_x(x0 + 5 - pdf.c_margin)
        pdf.cell(width - 5, 4.23, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
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


def render_pdf(letter: Letter) -> bytes:
    """The letter as PDF (A4, DIN 5008 form B; see the module docstring for the positions)."""
    w = _Words(letter)
    pdf = _Pdf(letter)
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
    return bytes(pdf.output())


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
def _addressee(bill_to: dict[str, Any] | None, customer: str, sender_country: str, language: Language) -> list[str]:
    """The window's lines from an order's bill-to: company, name, street, postcode and place, and the country
    in capitals when it is not the sender's (DIN 5008). Without a bill-to: the customer number alone."""
    b = bill_to or {}
    name = " ".join(p for p in (b.get("first_name"), b.get("last_name")) if p)
    lines = [p for p in (b.get("company"), name) if p]
    street = " ".join(p for p in (b.get("street"), b.get("street_number")) if p)
    place = " ".join(p for p in (b.get("postal_code"), b.get("postal_place")) if p)
    lines += [p for p in (street, place) if p]
    country = b.get("country_code")
    if country and country != sender_country and (street or place):
        lines.append(_country_name(country, language))
    return lines or [("Kunde " if language == "de" else "Customer ") + customer]


def _recipient(bill_to: dict[str, Any] | None) -> str | None:
    b = bill_to or {}
    return " ".join(p for p in (b.get("first_name"), b.get("last_name")) if p) or None


async def _orders(
    ctx: Kontor, business: Business, customer: str, orders: Sequence[str]
) -> tuple[dict[str, list[tuple[str, date]]], dict[str, Any] | None]:
    """The invoices (number, date) of each order, and the bill-to of the customer's latest of them (else of the
    customer's latest order)."""
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
    bill_to = await ctx.pool.fetchval(
        "SELECT bill_to FROM orders WHERE merchant_id = $1 AND business = $2 AND customer = $3 "
        "ORDER BY order_ref = ANY($4::text[]) DESC, order_date DESC, created_at DESC LIMIT 1",
        business.merchant_id,
        business.code,
        customer,
        list(orders),
    )
    return by_order, bill_to


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
    invoices, bill_to = await _orders(ctx, business, row["customer"], orders)
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
    return Letter(
        kind="notice",
        number=notice_id,
        level=row["level"],
        final=final,
        after_final=after_final,
        language=language,
        sender=sender,
        logo=logo,
        addressee=_addressee(bill_to, row["customer"], sender.address.country, language),
        recipient=_recipient(bill_to),
        customer=row["customer"],
        issued_on=row["issued_on"],
        pay_by=row["pay_by"],
        currency=cur,
        items=items,
        fee_minor=_minor(c["fee"], cur),
        flat_fee_minor=_minor(c.get("flat_fee"), cur),
        costs_minor=_minor(c["costs"], cur),
        interest_minor=interest_minor,
        interest=interest,
        total_minor=_minor(c["total"], cur),
        payment_reference=creditor_reference("dunning_notice", notice_id),
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
    invoices, bill_to = await _orders(ctx, business, customer, orders)
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
    return Letter(
        kind="collection",
        number=case_id,
        level=0,
        final=True,
        after_final="collection",
        language=language,
        sender=sender,
        logo=logo,
        addressee=_addressee(bill_to, customer, sender.address.country, language),
        recipient=_recipient(bill_to),
        customer=customer,
        issued_on=on,
        pay_by=None,
        currency=cur,
        items=[
            LetterItem(
                invoices=invoices.get(p.order_reference or "", []),
                order=p.order_reference,
                due=p.due_date,
                open_minor=_minor(p.amount, cur),
            )
            for p in overdue
        ],
        fee_minor=0,
        flat_fee_minor=0,
        costs_minor=_minor(open_items.costs, cur),
        interest_minor=_minor(open_items.interest, cur),
        interest=None,
        total_minor=row["amount_minor"],
        payment_reference=reference,
        earlier_notices=sorted(r["issued_on"] for r in notices),
    )
