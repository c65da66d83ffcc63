"""Dunning letters as PDF and HTML: every element a customer needs is on the page, in German and in English,
and the address sits in the DIN 5008 form B window (text and positions read back with pypdf)."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader

from dunning.letter_address import ADDRESS_FIELD, ADDRESS_TEXT_WIDTH, addressee_lines, fit_address, missing_address
from dunning.letter_fonts import unprintable
from dunning.letter_render import INFO_LEFT, render_html, render_pdf
from dunning.letter_text import Interest, Letter, LetterItem
from dunning.letters import natural_key, sort_items
from ledger.errors import Conflict
from ledger.profile_fields import AddressIn, BankIn, ContactIn, ProfileOut, RegisterIn
from ledger.profiles import Logo
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
        "Datum 28.12.2026", "Kundennummer K-1001", "Mahnungsnr. 4711",
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
        "Date 28 December 2026", "Customer number K-1001", "Notice no. 4711", ENGLISH[level], "Dear Erika Mustermann,",
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


# --- the address window (QA14 finding 4) ---------------------------------------------------------------------
LONG_COMPANY = "Beispiel Handelsgesellschaft mbH & Co. KG Zweigniederlassung Süd"
FONT = Path(__file__).parents[2] / "dunning" / "fonts" / "LiberationSans-Regular.ttf"


def runs(data: bytes, page: int = 0) -> list[tuple[str, float, float, float]]:
    """Every text run of a page: its text, x and baseline y in mm from the top-left corner, and its size (pt)."""
    found: list[tuple[str, float, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if text.strip():
            x, y = tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]
            found.append((text, x / MM, 297 - y / MM, size))

    PdfReader(io.BytesIO(data)).pages[page].extract_text(visitor_text=visit)
    return found


@pytest.fixture
def width_of() -> Iterator[Callable[[str, float], float]]:
    """The printed width (mm) of a text in Liberation Sans at a size (pt), as fpdf2 measures it."""
    pdf = FPDF(unit="mm")
    pdf.add_font("Sans", "", str(FONT))

    def width(text: str, size: float) -> float:
        pdf.set_font("Sans", "", size)
        return pdf.get_string_width(text)

    yield width
    for font in pdf.fonts.values():
        font.close()  # type: ignore[union-attr]


def test_a_long_company_name_wraps_inside_the_window_and_never_reaches_the_information_block(
    width_of: Callable[[str, float], float],
) -> None:
    lines = [LONG_COMPANY, "Hans-Jürgen Überlänge-Schmidt", "Am Langen Weg der nie endet 123a", "01067 Dresden"]
    data = render_pdf(letter(2, addressee=lines, addressee_names=2, recipient="Hans-Jürgen Überlänge-Schmidt"))
    x0, y0, width, height = ADDRESS_FIELD
    window = [(t, x, y, size) for t, x, y, size in runs(data) if x < x0 + width and y0 + 17.7 < y <= y0 + height]
    assert [t for t, *_ in window] == [
        "Beispiel Handelsgesellschaft mbH & Co. KG", "Zweigniederlassung Süd", *lines[1:]]  # fmt: skip
    for text, x, _, size in window:
        assert x == pytest.approx(x0 + 5, abs=0.1), text
        assert x + width_of(text, size) <= x0 + width < INFO_LEFT, text  # inside the 85 mm, clear of the block
    assert LONG_COMPANY in " ".join(pdf_text(data).split())
    labels = [t for t, x, _, _ in runs(data) if x == pytest.approx(INFO_LEFT, abs=0.5)]
    assert labels[:4] == ["Datum", "Kundennummer", "Mahnungsnr.", "Zahlungsreferenz"]  # none overwritten
    html = render_html(letter(2, addressee=lines, addressee_names=2))
    assert "Beispiel Handelsgesellschaft mbH &amp; Co. KG<br>Zweigniederlassung Süd<br>" in html


def test_the_address_shrinks_then_the_names_give_way_but_never_street_and_place(
    width_of: Callable[[str, float], float],
) -> None:
    def fits(block_lines: list[str], size: float) -> bool:
        return all(width_of(line, size) <= ADDRESS_TEXT_WIDTH for line in block_lines)

    short = fit_address(["Erika Mustermann", "Lindenweg 5", "80331 München"], 1, width_of)
    assert short is not None
    assert (short.size, short.lines) == (10.0, ["Erika Mustermann", "Lindenweg 5", "80331 München"])
    seven = fit_address([LONG_COMPANY, "Abteilung Forderungsmanagement und Buchhaltung Nord", "Hans-Jürgen Meier",
                         "Am Langen Weg 1", "01067 Dresden"], 3, width_of)  # fmt: skip
    assert seven is not None
    assert (seven.size, len(seven.lines)) == (9.0, 7)  # 7 lines do not fit at 10 pt (6), they do at 9 pt
    assert fits(seven.lines, 9.0)
    company = f"{LONG_COMPANY} und Partner Vermögensverwaltung"  # 96 characters (a bill-to takes 100)
    name = ("Maximiliane-Konstanze Friederike Wilhelmine Hohenzollern-Sigmaringen von und zu Großherzogtum Baden "
            "Württemberg und Hessen-Darmstadt")  # fmt: skip
    street = "Straße des Siebzehnten Juni und der Deutschen Einheit Hinterhaus Seitenflügel Aufgang C 135"
    place = "01067 Dresden-Neustadt Ortsteil Innere Neustadt Stadtbezirk Altstadt Nord"
    long = fit_address([company, name, street, place], 2, width_of)
    assert long is not None
    assert (long.size, len(long.lines)) == (8.0, 8)  # 8 pt, 8 lines: the most the window takes
    assert fits(long.lines, 8.0)
    postal = wrap8(street, width_of) + wrap8(place, width_of)
    assert len(postal) == 4
    assert long.lines[-4:] == postal  # street and place are never cut
    assert long.lines[:2] == wrap8(company, width_of)  # the company first, whole
    assert long.lines[2] == wrap8(name, width_of)[0]
    assert long.lines[3].endswith("…")  # the person's name gave way, visibly
    assert long.lines[3][:-1].rstrip() in name
    assert fit_address(["Erika", f"{street} " * 4, place], 1, width_of) is None  # street and place alone overflow


def wrap8(text: str, width_of: Callable[[str, float], float]) -> list[str]:
    from dunning.letter_address import wrap

    return wrap(text, ADDRESS_TEXT_WIDTH, lambda t: width_of(t, 8.0))


def test_an_address_too_long_for_the_window_is_refused() -> None:
    too_long = letter(2, addressee=["Erika", "Lindenweg " * 40, "80331 München " * 10], addressee_names=1,
                      sources=(("bill_to.first_name", "Erika"), ("bill_to.street", "Lindenweg " * 40)))  # fmt: skip
    with pytest.raises(Conflict) as refused:
        render_pdf(too_long)
    assert refused.value.code == "address_too_long"
    assert [e.field for e in refused.value.errors] == ["bill_to.street"]


# --- addresses from the bill-to (QA14 findings 6 and 17) ---------------------------------------------------
FULL = {"first_name": "Erika", "last_name": "Mustermann", "street": "Lindenweg", "street_number": "5",
        "postal_code": "80331", "postal_place": "München", "country_code": "DE"}  # fmt: skip


def test_a_bill_to_without_a_postal_address_is_named_field_by_field() -> None:
    assert missing_address(FULL) == []
    minimal = {"first_name": "Max", "last_name": "Minimal", "country_code": "DE"}
    assert [e.field for e in missing_address(minimal)] == ["bill_to.street", "bill_to.postal_code",
                                                           "bill_to.postal_place"]  # fmt: skip
    assert [e.field for e in missing_address(None)] == ["bill_to.last_name", "bill_to.street", "bill_to.postal_code",
                                                        "bill_to.postal_place", "bill_to.country_code"]  # fmt: skip
    assert [e.field for e in missing_address({**FULL, "street": "   "})] == ["bill_to.street"]
    company_only = {**FULL, "first_name": None, "last_name": None, "company": "Acme GmbH"}
    assert missing_address(company_only) == []
    hong_kong = {**FULL, "postal_code": None, "postal_place": "Kowloon", "country_code": "HK"}
    assert missing_address(hong_kong) == []  # no postcodes there


def test_the_street_line_follows_the_country_and_never_inverts_what_was_sent() -> None:
    assert addressee_lines(FULL, "DE", "de") == (["Erika Mustermann", "Lindenweg 5", "80331 München"], 1)
    paris = {"first_name": "Jean", "last_name": "Dupont", "street": "Rue de Rivoli", "street_number": "10",
             "postal_code": "75001", "postal_place": "Paris", "country_code": "FR"}  # fmt: skip
    assert addressee_lines(paris, "FR", "en")[0] == ["Jean Dupont", "10 Rue de Rivoli", "75001 Paris"]
    as_given = {**paris, "street": "10 Rue de Rivoli", "street_number": None}
    assert addressee_lines(as_given, "FR", "en")[0][1] == "10 Rue de Rivoli"
    twice = {**paris, "street": "Rue de Rivoli 10", "street_number": "10"}
    assert addressee_lines(twice, "FR", "en")[0][1] == "Rue de Rivoli 10"  # the number is not added again
    assert addressee_lines(paris, "DE", "de")[0] == ["Jean Dupont", "10 Rue de Rivoli", "75001 Paris", "FRANKREICH"]
    london = {"company": "Acme Ltd", "street": "High Street", "street_number": "1", "postal_code": "SW1A 1AA",
              "postal_place": "London", "country_code": "GB"}  # fmt: skip
    assert addressee_lines(london, "DE", "en") == (["Acme Ltd", "1 High Street", "London", "SW1A 1AA",
                                                    "UNITED KINGDOM"], 1)  # fmt: skip
    spaced = {**FULL, "first_name": "  Erika ", "street": "Linden  weg"}
    assert addressee_lines(spaced, "DE", "de")[0][:2] == ["Erika Mustermann", "Linden weg 5"]


# --- characters the fonts lack (QA14 finding 5) -----------------------------------------------------------
def test_chinese_greek_and_emoji_are_printed_from_the_fallback_fonts() -> None:
    name = "李小龙 😀 Ωmega-Straße"
    cjk = letter(2, addressee=[name, "Lindenweg 5", "80331 München"], recipient=name,
                 sources=(("bill_to.first_name", "李小龙 😀"), ("bill_to.last_name", "Ωmega-Straße")))  # fmt: skip
    assert unprintable(cjk) == []
    data = render_pdf(cjk)
    flat = " ".join(pdf_text(data).split())
    assert f"{name} Lindenweg 5" in flat
    assert f"Guten Tag {name}," in flat
    fonts = {str(f["/BaseFont"]).split("+")[-1] for f in PdfReader(io.BytesIO(data)).pages[0]["/Resources"]["/Font"]
             .get_object().values()}  # fmt: skip
    assert fonts == {"LiberationSans", "LiberationSansBold", "DejaVuSansBook", "WenQuanYiMicroHei"}
    korean = letter(2, addressee=["김민준", "Lindenweg 5", "80331 München"], recipient="김민준")
    assert "Guten Tag 김민준," in " ".join(pdf_text(render_pdf(korean)).split())
    latin = render_pdf(letter(2))  # a letter that needs no fallback loads none
    assert {str(f["/BaseFont"]).split("+")[-1] for f in PdfReader(io.BytesIO(latin)).pages[0]["/Resources"]["/Font"]
            .get_object().values()} == {"LiberationSans", "LiberationSansBold"}  # fmt: skip


def test_a_character_no_font_has_refuses_the_pdf_naming_the_field() -> None:
    hieroglyph = letter(2, addressee=["Erika 𓀀 Mustermann", "Lindenweg 5", "80331 München"],
                        sources=(("bill_to.first_name", "Erika 𓀀"), ("bill_to.last_name", "Mustermann")),
                        customer="K-\U0001f9ff")  # fmt: skip
    errors = unprintable(hieroglyph)
    assert [e.field for e in errors] == ["bill_to.first_name", "customer"]
    assert "U+13000" in errors[0].message
    assert "U+1F9FF" in errors[1].message
    with pytest.raises(Conflict) as refused:
        render_pdf(hieroglyph)
    assert refused.value.code == "characters_unprintable"
    assert "bill_to.first_name" in refused.value.detail
    assert "Erika 𓀀 Mustermann" in render_html(hieroglyph)  # the browser's fonts may have it


# --- the document number, the order of the claims, English wording (QA14 findings 7, 16, 17) -------------------
def test_the_notice_number_is_labelled_as_a_number_not_a_count() -> None:
    for level in (1, 2):
        flat = " ".join(pdf_text(render_pdf(letter(level))).split())
        assert "Mahnungsnr. 4711" in flat
        assert "Mahnung 4711" not in flat
    assert "<title>1. Mahnung · Mahnungsnr. 4711</title>" in render_html(letter(2))
    assert "<title>First dunning notice · Notice no. 4711</title>" in render_html(letter(2, "en"))
    assert PdfReader(io.BytesIO(render_pdf(letter(2)))).metadata.title == "1. Mahnung · Mahnungsnr. 4711"
    collection = " ".join(pdf_text(render_pdf(letter(0, kind="collection", pay_by=None))).split())
    assert "Inkasso-Fallnr. 4711" in collection


def test_claims_are_sorted_by_date_then_number_in_natural_order() -> None:
    assert sorted(["INV-6-10", "INV-6-2", "INV-6-1", "inv-6-19", "INV-6-0"], key=natural_key) == [
        "INV-6-0", "INV-6-1", "INV-6-2", "INV-6-10", "inv-6-19"]  # fmt: skip

    def claim(number: str, on: date, due: date = date(2026, 11, 30)) -> LetterItem:
        return LetterItem(invoices=[(number, on)], order=number, due=due, open_minor=1000)

    items = [claim("INV-ord-6-10", date(2026, 10, 11)), claim("INV-ord-6-2", date(2026, 10, 3)),
             claim("INV-ord-6-1", date(2026, 10, 2)), claim("INV-ord-6-20", date(2026, 10, 2)),
             LetterItem(invoices=[], order="ord-7", due=date(2026, 10, 1), open_minor=500),
             LetterItem(invoices=[("B-10", date(2026, 9, 9)), ("B-9", date(2026, 9, 9)), ("A-1", date(2026, 9, 10))],
                        order="ord-8", due=date(2026, 10, 5), open_minor=500)]  # fmt: skip
    ordered = sort_items(items)
    assert [i.order for i in ordered] == ["ord-8", "ord-7", "INV-ord-6-1", "INV-ord-6-20", "INV-ord-6-2",
                                          "INV-ord-6-10"]  # fmt: skip
    assert [n for n, _ in ordered[0].invoices] == ["B-9", "B-10", "A-1"]
    flat = " ".join(pdf_text(render_pdf(letter(2, items=sort_items(items)))).split())
    at = [flat.index(f"Rechnung INV-ord-6-{n} (") for n in (1, 20, 2, 10)]
    assert at == sorted(at)


def test_an_english_letter_of_a_french_business_code() -> None:
    fr = letter(2, "en", country="FR", flat_fee_minor=4000,
                addressee=["Jean Dupont", "10 Rue de Rivoli", "75001 Paris"], recipient="Jean Dupont")  # fmt: skip
    text = pdf_text(render_pdf(fr))
    flat = " ".join(text.split())
    assert "Dear Jean Dupont, Unfortunately, we have received no payment" in flat
    assert "10 Rue de Rivoli" in flat
    assert "BGB" not in flat
    assert "§" not in flat
    assert "reference rate 1.27 % + 5 percentage points = 6.27 % a year." in flat
    assert "Flat-rate compensation for recovery costs €40.00" in flat
    html = render_html(fr)
    assert "1.27\xa0% + 5" in html  # a number never parts from its % sign
    assert "= 6.27\xa0% a year" in html
    assert "Date 28 December 2026" in flat  # dates in the letter's language
    for level, opening in [(1, "Perhaps it has"), (4, "Despite our payment reminder")]:
        assert f"Dear Jean Dupont, {opening}" in " ".join(pdf_text(render_pdf(replace(fr, level=level,
                                                                                      final=level == 4))).split())  # fmt: skip
    german_code = " ".join(pdf_text(render_pdf(letter(2, "en", flat_fee_minor=4000))).split())
    assert "base rate 1.27 % + 5 percentage points = 6.27 % a year (§ 288 BGB)" in german_code
    assert "Flat-rate default charge (§ 288 (5) BGB) €40.00" in german_code
    austrian = " ".join(pdf_text(render_pdf(letter(2, country="AT"))).split())
    assert "Referenzzinssatz 1,27 % + 5 Prozentpunkte = 6,27 % p. a.. Mahngebühren" not in austrian
    assert "Referenzzinssatz 1,27 % + 5 Prozentpunkte = 6,27 % p. a. Mahngebühren" in austrian
    assert "BGB" not in austrian


def test_a_non_breaking_space_keeps_a_number_with_its_percent_sign() -> None:
    pdf = FPDF(unit="mm")
    pdf.add_font("Sans", "", str(FONT))
    pdf.add_page()
    pdf.set_font("Sans", "", 10)
    kept = pdf.multi_cell(20, 5, "rate of 6.27\u00a0% a year", dry_run=True, output="LINES")
    broken = pdf.multi_cell(20, 5, "rate of 6.27 % a year", dry_run=True, output="LINES")
    for font in pdf.fonts.values():
        font.close()  # type: ignore[union-attr]
    assert not any(line.startswith("%") for line in kept)
    assert any(line.startswith("%") for line in broken)  # what a plain space allows (QA14 finding 17)


def test_a_long_sender_line_shrinks_into_the_window(width_of: Callable[[str, float], float]) -> None:
    long_name = "Müller Versand und Handelsgesellschaft mbH & Co. KG"
    profile = msgspec.structs.replace(sender(), legal_name=long_name)
    data = render_pdf(letter(2, sender=profile))
    x0, y0, width, _ = ADDRESS_FIELD
    [(text, x, _, size)] = [r for r in runs(data) if y0 + 12 <= r[2] <= y0 + 17.7 and r[1] < x0 + width]
    assert text == f"{long_name} · Hafenstraße 12 · 20457 Hamburg"  # whole, only smaller
    assert 5.5 <= size < 7
    assert x + width_of(text, size) <= x0 + width
    longer = msgspec.structs.replace(sender(), legal_name=long_name * 2)
    [(cut, _, _, smallest)] = [r for r in runs(render_pdf(letter(2, sender=longer)))
                               if y0 + 12 <= r[2] <= y0 + 17.7 and r[1] < x0 + width]  # fmt: skip
    assert (smallest, cut[-1]) == (5.5, "…")
    assert width_of(cut, 5.5) <= width - 5
