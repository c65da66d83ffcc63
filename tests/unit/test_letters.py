"""Dunning letters as PDF and HTML: every element a customer needs is on the page, in German and in English,
and the address sits in the DIN 5008 form B window (text and positions read back with pypdf)."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from dunning.letters import ADDRESS_FIELD, Interest, Letter, LetterItem, render_html, render_pdf
from ledger.profiles import AddressIn, BankIn, ContactIn, Logo, ProfileOut, RegisterIn
from payments.references import creditor_reference, found_in

MM = 72 / 25.4  # PDF points per millimetre


def sender(language: str = "de") -> ProfileOut:
    return ProfileOut(
        business=1001,
        legal_name="Müller Versand GmbH",
        address=AddressIn(street="Hafenstraße 12", postcode="20457", city="Hamburg", country="DE"),
        bank=BankIn(
            account_holder="Müller Versand GmbH",
            iban="DE89370400440532013000",
            bic="COBADEFFXXX",
            bank_name="Commerzbank",
        ),
        vat_id="DE136695976",
        tax_number="27/123/45678",
        register=RegisterIn(court="Amtsgericht Hamburg", number="HRB 123456"),
        managing_directors="Erika Müller",
        contact=ContactIn(phone="+49 40 1234567", email="buchhaltung@mueller-versand.de", web="mueller-versand.de"),
        letter_language=language,  # type: ignore[arg-type]
        letter_language_default=False,
        logo=None,
        updated_at=datetime(2026, 11, 1),
    )


def letter(level: int = 3, language: str = "de", **changes: object) -> Letter:
    base = Letter(
        kind="notice",
        number=4711,
        level=level,
        final=level == 4,
        after_final="collection",
        language=language,  # type: ignore[arg-type]
        sender=sender(language),
        logo=None,
        addressee=["Erika Mustermann", "Lindenweg 5", "80331 München"],
        recipient="Erika Mustermann",
        customer="K-1001",
        issued_on=date(2026, 12, 28),
        pay_by=date(2027, 1, 11),
        currency="EUR",
        items=[
            LetterItem(
                invoices=[("RE-2026-0815", date(2026, 10, 1))],
                order="order-42",
                due=date(2026, 10, 15),
                open_minor=11900,
            ),
            LetterItem(
                invoices=[("RE-2026-0901", date(2026, 10, 20)), ("RE-2026-0902", date(2026, 10, 22))],
                order="order-57",
                due=date(2026, 11, 3),
                open_minor=5350,
            ),
        ],
        fee_minor=150,
        flat_fee_minor=0,
        costs_minor=250,
        interest_minor=84,
        interest=Interest(
            start=date(2026, 11, 30),
            through=date(2026, 12, 28),
            basis_minor=17250,
            base_rate=Decimal("1.27"),
            points=Decimal(5),
        ),
        total_minor=17584,
        payment_reference=creditor_reference("dunning_notice", 4711),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def positions(data: bytes) -> dict[str, tuple[float, float]]:
    """Every text run of the first page with its position: mm from the left and from the top (baseline)."""
    found: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if text.strip():
            x, y = tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]
            found.setdefault(text.strip(), (x / MM, 297 - y / MM))

    PdfReader(io.BytesIO(data)).pages[0].extract_text(visitor_text=visit)
    return found


GERMAN = {
    1: "Zahlungserinnerung",
    2: "1. Mahnung",
    3: "2. Mahnung",
    4: "Letzte Mahnung vor Übergabe an ein Inkassounternehmen",
}
ENGLISH = {
    1: "Payment reminder",
    2: "First dunning notice",
    3: "Second dunning notice",
    4: "Final notice before collection",
}


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_every_element_of_a_german_letter(level: int) -> None:
    text = pdf_text(render_pdf(letter(level)))
    flat = " ".join(text.split())
    for expected in [
        "Müller Versand GmbH · Hafenstraße 12 · 20457 Hamburg",  # sender line
        "Erika Mustermann", "Lindenweg 5", "80331 München",  # addressee
        "Datum 28.12.2026", "Kundennummer K-1001", "Mahnung 4711",
        GERMAN[level],
        "Guten Tag Erika Mustermann,",
        "Rechnung RE-2026-0815 (Bestellung order-42) 01.10.2026 15.10.2026 119,00 €",
        "Rechnung RE-2026-0901 (Bestellung order-57) Rechnung RE-2026-0902 20.10.2026 22.10.2026 03.11.2026 53,50 €",
        "Mahngebühren früherer Mahnungen 1,00 €", "Mahngebühr dieser Mahnung 1,50 €", "Verzugszinsen 0,84 €",
        "Verzugszinsen vom 30.11.2026 bis 28.12.2026 auf 172,50 €: Basiszinssatz 1,27 % + 5 Prozentpunkte = 6,27 % p. a.",
        "Gesamtbetrag 175,84 €",
        "Bitte überweisen Sie den Gesamtbetrag von 175,84 € bis zum 11.01.2027",
        "IBAN DE89 3704 0044 0532 0130 00", "BIC COBADEFFXXX", "Kontoinhaber Müller Versand GmbH",
        f"Verwendungszweck {' '.join(creditor_reference('dunning_notice', 4711)[i:i + 4] for i in range(0, 14, 4))}",
        "Amtsgericht Hamburg, HRB 123456", "USt-IdNr.: DE136695976", "Steuernummer: 27/123/45678",
        "Geschäftsführung: Erika Müller",
        "Mit freundlichen Grüßen",
    ]:  # fmt: skip
        assert expected in flat, expected
    if level == 4:
        assert "übergeben wir die Forderung ohne weitere Ankündigung an ein Inkassounternehmen" in flat
    others = set(GERMAN.values()) - {GERMAN[level]}
    assert not any(f"\n{t}\n" in f"\n{text}\n" for t in others if t != "Zahlungserinnerung" or level == 1)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_every_element_of_an_english_letter(level: int) -> None:
    flat = " ".join(pdf_text(render_pdf(letter(level, "en"))).split())
    for expected in [
        "Müller Versand GmbH · Hafenstraße 12 · 20457 Hamburg", "Erika Mustermann", "80331 München",
        "Date 28 December 2026", "Customer number K-1001", ENGLISH[level], "Dear Erika Mustermann,",
        "Invoice RE-2026-0815 (order order-42) 1 Oct 2026 15 Oct 2026 €119.00",
        "Default interest from 30 November 2026 to 28 December 2026 on €172.50: base rate 1.27 % + 5 percentage "
        "points = 6.27 % a year",
        "Total €175.84", "Please transfer the total of €175.84 by 11 January 2027",
        "IBAN DE89 3704 0044 0532 0130 00", "VAT ID: DE136695976", "Managing directors: Erika Müller",
        "Yours sincerely",
    ]:  # fmt: skip
        assert expected in flat, expected


def test_the_address_sits_in_the_window_and_the_sender_line_above_it() -> None:
    at = positions(render_pdf(letter()))
    x0, y0, width, height = ADDRESS_FIELD
    sender_x, sender_y = at["Müller Versand GmbH · Hafenstraße 12 · 20457 Hamburg"]
    assert x0 <= sender_x <= x0 + 6
    assert y0 + 12 <= sender_y <= y0 + 17.7  # the last line of the Zusatz- und Vermerkzone
    previous = y0 + 17.7
    for line in ("Erika Mustermann", "Lindenweg 5", "80331 München"):
        x, y = at[line]
        assert x0 + 4.5 <= x <= x0 + 5.5 < x0 + width, line  # written from 25 mm, inside the 85 mm
        assert previous < y <= y0 + height, line  # in the Anschriftzone, one under the other
        previous = y
    assert at["Datum"][0] == pytest.approx(125, abs=0.5)  # the information block


def test_a_foreign_address_names_the_country_and_a_company_gets_the_formal_salutation() -> None:
    flat = " ".join(pdf_text(render_pdf(letter(2, addressee=["Acme Ltd", "1 High St", "SW1A 1AA London",
                                                              "VEREINIGTES KÖNIGREICH"], recipient=None))).split())  # fmt: skip
    assert "VEREINIGTES KÖNIGREICH" in flat
    assert "Sehr geehrte Damen und Herren," in flat


def test_the_collection_letter_and_its_reference() -> None:
    data = render_pdf(letter(0, kind="collection", pay_by=None, earlier_notices=[date(2026, 11, 1), date(2026, 12, 1)],
                             payment_reference=creditor_reference("collection_case", 7)))  # fmt: skip
    flat = " ".join(pdf_text(data).split())
    assert "Übergabe Ihrer Forderung an ein Inkassounternehmen" in flat
    assert "Mahnungen vom 01.11.2026, 01.12.2026" in flat
    assert creditor_reference("collection_case", 7) in found_in(flat)
    english = " ".join(pdf_text(render_pdf(letter(0, "en", kind="collection", pay_by=None))).split())
    assert "Your debt handed over for collection" in english


def test_the_logo_is_embedded_and_the_html_is_escaped() -> None:
    out = io.BytesIO()
    Image.new("RGB", (300, 100), (200, 30, 30)).save(out, format="PNG")
    logo = Logo(data=out.getvalue(), media_type="image/png", width=300, height=100)
    data = render_pdf(letter(2, logo=logo))
    assert len(PdfReader(io.BytesIO(data)).pages[0].images) == 1
    html = render_html(letter(2, addressee=["<b>Mallory</b>", "x"], logo=logo))
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert "<b>Mallory" not in html
    assert "data:image/png;base64," in html
    for expected in ("1. Mahnung", "RE-2026-0815", "175,84\xa0€", "DE89 3704 0044 0532 0130 00"):
        assert expected in html


def test_the_reference_is_found_however_it_is_typed() -> None:
    ref = creditor_reference("dunning_notice", 42)
    spaced = " ".join(ref[i : i + 4] for i in range(0, len(ref), 4))
    assert ref in found_in(f"Mahnung {spaced} Danke")
    assert found_in(f"{ref.lower()}")[0] == ref
    assert ref not in found_in(ref[:-1] + ("3" if ref[-1] != "3" else "4"))  # a typo fails the check digits
    assert ref[:-1] not in found_in(ref)  # a shorter reading of it is no candidate unless its digits check


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_a_page_renders_to_png(tmp_path: Path) -> None:
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(render_pdf(letter(4)))
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    with Image.open(tmp_path / "page-1.png") as page:
        assert page.size in ((496, 702), (497, 702))  # A4 at 60 dpi
        assert page.convert("L").getextrema()[0] < 50  # something dark was drawn
